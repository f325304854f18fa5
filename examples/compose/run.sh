set -eu
export DOCKER_BUILDKIT=0   # build with the classic builder: pydockerd has no BuildKit (see above)
docker compose up -d --wait
port=$(docker compose port web 3000 | cut -d: -f2)
wget -q -O - "http://127.0.0.1:$port/"
docker compose exec -T worker sh -c 'until [ -s /data/page ]; do sleep 0.1; done; cat /data/page'
docker compose down -v --rmi local
