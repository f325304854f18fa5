// A dockerode user's session against the daemon in DOCKER_HOST: list, pull, create + start with a
// published port, attach (demultiplexed), HTTP to the published port, logs, a hijacked exec,
// events, stop, remove. Prints one JSON object with what it saw; the Python test checks it.
'use strict';
const Docker = require('dockerode');
const http = require('http');
const { PassThrough } = require('stream');

const image = process.argv[2];
const docker = new Docker();   // docker-modem reads DOCKER_HOST

function collect(stream) {
  const chunks = [];
  stream.on('data', (c) => chunks.push(c));
  return () => Buffer.concat(chunks).toString();
}

function httpGet(port) {
  return new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port, path: '/' }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve(Buffer.concat(chunks).toString()));
    }).on('error', reject);
  });
}

function until(predicate, what, ms = 20000) {
  const deadline = Date.now() + ms;
  return new Promise((resolve, reject) => {
    const tick = () => {
      if (predicate()) return resolve();
      if (Date.now() > deadline) return reject(new Error('timed out waiting for ' + what));
      setTimeout(tick, 20);
    };
    tick();
  });
}

async function main() {
  const out = {};
  const since = Math.floor(Date.now() / 1000) - 1;
  out.listedBefore = (await docker.listContainers({ all: true })).length;

  const pullStream = await docker.pull(image);
  const progress = await new Promise((resolve, reject) =>
    docker.modem.followProgress(pullStream, (err, res) => (err ? reject(err) : resolve(res))));
  out.pullStatus = progress.map((p) => p.status).filter(Boolean);

  const eventStream = await docker.getEvents({ since, filters: { type: ['container'] } });
  const events = [];
  eventStream.on('data', (buf) => {
    for (const line of buf.toString().split('\n')) if (line.trim()) events.push(JSON.parse(line));
  });

  const container = await docker.createContainer({
    Image: image,
    Cmd: ['sh', '-c', 'mkdir -p /www && echo served-to-dockerode > /www/index.html && ' +
                      'httpd -p 8080 -h /www && echo to-stdout && echo to-stderr >&2 && exec sleep 600'],
    ExposedPorts: { '8080/tcp': {} },
    HostConfig: { PortBindings: { '8080/tcp': [{ HostIp: '127.0.0.1', HostPort: '' }] } },
    AttachStdout: true,
    AttachStderr: true,
  });
  const attached = await container.attach({ stream: true, stdout: true, stderr: true });
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  container.modem.demuxStream(attached, stdout, stderr);
  const stdoutText = collect(stdout);
  const stderrText = collect(stderr);
  await container.start();
  await until(() => stdoutText().includes('to-stdout') && stderrText().includes('to-stderr'), 'attach output');
  out.attachStdout = stdoutText();
  out.attachStderr = stderrText();

  const info = await container.inspect();
  const binding = info.NetworkSettings.Ports['8080/tcp'][0];
  out.hostIp = binding.HostIp;
  out.http = await httpGet(Number(binding.HostPort));

  const logs = await container.logs({ stdout: true, stderr: true });
  out.logsBytes = logs.length;

  const exec = await container.exec({ Cmd: ['sh', '-c', 'read line; echo got:$line'], AttachStdin: true,
                                      AttachStdout: true, AttachStderr: true });
  const execStream = await exec.start({ hijack: true, stdin: true });
  const execOut = new PassThrough();
  container.modem.demuxStream(execStream, execOut, new PassThrough());
  const execText = collect(execOut);
  execStream.write('hello-exec\n');
  await until(() => execText().includes('got:hello-exec'), 'exec output');
  out.exec = execText();
  out.execExit = (await exec.inspect()).ExitCode;

  await container.stop({ t: 1 });
  await container.remove();
  await until(() => events.some((e) => e.Action === 'destroy' && e.id === container.id), 'the destroy event');
  eventStream.destroy();
  out.events = events.filter((e) => e.id === container.id).map((e) => e.Action);
  out.listedAfter = (await docker.listContainers({ all: true })).length;
  process.stdout.write(JSON.stringify(out) + '\n');
}

main().catch((err) => { console.error(err && err.stack ? err.stack : err); process.exit(1); });
