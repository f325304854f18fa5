const Docker = require('dockerode');
const docker = new Docker();   // DOCKER_HOST, as the docker CLI reads it

async function main() {
  const container = await docker.createContainer({ Image: 'busybox', Cmd: ['echo', 'hello from dockerode'] });
  await container.start();
  await container.wait();
  const logs = await container.logs({ stdout: true });
  process.stdout.write(logs.slice(8).toString());   // one multiplexed frame: 8-byte header, then the text
  await container.remove();
}

main().catch((err) => { console.error(err); process.exit(1); });
