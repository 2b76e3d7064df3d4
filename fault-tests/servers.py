"""Real redis-server processes for the fault suite, on free private ports, that tests can kill,
restart (with or without AOF), pause, cut off and fill up."""
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import redis


def free_port():
    """A TCP port nothing listens on now: the kernel's pick, or one from the range in env
    RCELERY_FAULT_PORTS (`6450-6499`) on a machine whose other users need the rest."""
    wanted = os.environ.get("RCELERY_FAULT_PORTS")
    if wanted:
        low, high = (int(p) for p in wanted.split("-", 1))
        return port_in(low, high)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class FaultyRedis:
    """A redis-server on `port` whose data directory outlives restarts.

    `aof=True` turns on the append-only file with fsync on every write, so a `kill -9`
    loses nothing that was acknowledged; `aof=False` keeps nothing across a restart.
    """

    def __init__(self, port=None, aof=False, extra=(), password=None):
        self.port = port or free_port()
        self.aof = aof
        self.password = password
        self.extra = list(extra) + (["--requirepass", password] if password else [])
        self.dir = tempfile.mkdtemp(prefix=f"rcelery-fault-redis-{self.port}-")
        self.proc = None

    def url(self, db=0):
        return f"redis://127.0.0.1:{self.port}/{db}"

    def client(self, db=0, **kw):
        kw.setdefault("socket_timeout", 10)
        kw.setdefault("password", self.password)
        return redis.Redis(host="127.0.0.1", port=self.port, db=db, **kw)

    def start(self, timeout=10.0):
        """Start (or start again, on the same port and data directory); fail loudly."""
        exe = shutil.which("redis-server")
        if exe is None:
            raise RuntimeError("redis-server not found on PATH: install it (apt-get install redis-server)")
        cmd = [exe, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
               "--dir", self.dir, "--daemonize", "no", "--logfile", os.path.join(self.dir, "redis.log")]
        if self.aof:
            cmd += ["--appendonly", "yes", "--appendfsync", "always"]
        else:
            cmd += ["--appendonly", "no"]
        cmd += self.extra
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis-server on {self.port} exited ({self.proc.returncode}): "
                                   f"{self.proc.stderr.read().decode(errors='replace')} {self.log_tail()}")
            try:
                if self.client(socket_timeout=0.5).ping():
                    return self
            except redis.RedisError:
                time.sleep(0.05)
        raise RuntimeError(f"redis-server on {self.port} did not answer within {timeout}s: {self.log_tail()}")

    def kill(self):
        """kill -9: no shutdown, no final save."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def restart(self, down_for=0.0):
        """kill -9, stay down `down_for` seconds, start again."""
        self.kill()
        time.sleep(down_for)
        return self.start()

    def pause(self, seconds):
        """CLIENT PAUSE for every client (commands queue on the server until it ends)."""
        self.client().execute_command("CLIENT", "PAUSE", int(seconds * 1000), "ALL")

    def kill_clients(self):
        """CLIENT KILL TYPE normal: cut every ordinary connection (ours included)."""
        return self.client().execute_command("CLIENT", "KILL", "TYPE", "normal")

    def log_tail(self, n=2000):
        try:
            with open(os.path.join(self.dir, "redis.log")) as f:
                return f.read()[-n:]
        except OSError:
            return ""

    def stop(self):
        self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


class PrivatePostgres:
    """A PostgreSQL server of its own (initdb in a temporary directory, trust auth, a free
    port) that tests can stop at once (`-m immediate`, as a crash) and start again. Runs as
    the `postgres` system user when started as root, as PostgreSQL requires."""

    def __init__(self, port=None):
        self.port = port or free_port()
        self.dir = tempfile.mkdtemp(prefix=f"rcelery-fault-pg-{self.port}-")
        self.data = os.path.join(self.dir, "data")
        self.log = os.path.join(self.dir, "postgres.log")
        self.bin = self._bindir()

    @staticmethod
    def _bindir():
        found = shutil.which("pg_ctl")
        if found:
            return os.path.dirname(found)
        root = "/usr/lib/postgresql"
        versions = sorted(os.listdir(root), key=lambda v: int(v) if v.isdigit() else 0) \
            if os.path.isdir(root) else []
        if not versions:
            raise RuntimeError("PostgreSQL server binaries not found: install postgresql")
        return os.path.join(root, versions[-1], "bin")

    def _run(self, *args, check=True):
        cmd = [os.path.join(self.bin, args[0]), *args[1:]]
        if os.geteuid() == 0:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        return subprocess.run(cmd, capture_output=True, text=True, check=check, timeout=60)

    def url(self, db="postgres", user="postgres", password=None):
        auth = f"{user}:{password}" if password else user
        return f"postgresql://{auth}@127.0.0.1:{self.port}/{db}"

    def connect(self, db="postgres"):
        import psycopg2
        conn = psycopg2.connect(host="127.0.0.1", port=self.port, user="postgres", dbname=db,
                                connect_timeout=5)
        conn.autocommit = True
        return conn

    def start(self, timeout=30.0, tls=None, hba=None):
        """Starts the server. `tls`: (certificate, key) paths to serve TLS with; `hba`: lines
        put before initdb's own in pg_hba.conf (the first matching line wins)."""
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres")
        if not os.path.exists(self.data):
            self._run("initdb", "-D", self.data, "-A", "trust", "-U", "postgres", "--no-sync")
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.dir} -c fsync=off"
        if tls:
            cert, key = (os.path.join(self.dir, name) for name in ("server.pem", "server.key"))
            shutil.copyfile(tls[0], cert)
            shutil.copyfile(tls[1], key)
            os.chmod(key, 0o600)
            if os.geteuid() == 0:
                for path in (cert, key):
                    shutil.chown(path, "postgres")
            options += f" -c ssl=on -c ssl_cert_file={cert} -c ssl_key_file={key}"
        if hba:
            conf = os.path.join(self.data, "pg_hba.conf")
            with open(conf) as f:
                existing = f.read()
            with open(conf, "w") as f:
                f.write("".join(line + "\n" for line in hba) + existing)
        self._run("pg_ctl", "-D", self.data, "-l", self.log, "-w", "-t", str(int(timeout)),
                  "-o", options, "start")
        return self

    def crash(self):
        """Stop at once, as a crash would (no checkpoint; the server recovers at start)."""
        done = self._run("pg_ctl", "-D", self.data, "-m", "immediate", "-w", "stop", check=False)
        if done.returncode != 0:
            raise RuntimeError(f"pg_ctl stop failed: {done.stdout} {done.stderr}")

    def stop(self):
        self._run("pg_ctl", "-D", self.data, "-m", "fast", "-w", "stop", check=False)
        shutil.rmtree(self.dir, ignore_errors=True)


def port_in(low, high, taken=set()):
    """A free loopback port in [low, high] not handed out before in this process (the fault
    tests that run several servers of one role keep to a known range)."""
    for port in range(low, high + 1):
        if port in taken:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        taken.add(port)
        return port
    raise RuntimeError(f"no free port in {low}-{high}")


class Sentinel:
    """A redis-sentinel (`redis-server sentinel.conf --sentinel`) monitoring `master_port` as
    `name`, quorum `quorum`, with short timeouts so a fail-over takes a few seconds."""

    def __init__(self, port, master_port, name="mymaster", quorum=2, auth_pass=None,
                 down_after_ms=1000, failover_timeout_ms=3000, requirepass=None):
        self.port = port
        self.name = name
        self.requirepass = requirepass
        self.dir = tempfile.mkdtemp(prefix=f"rcelery-fault-sentinel-{port}-")
        self.conf = os.path.join(self.dir, "sentinel.conf")
        lines = [
            f"port {port}", "bind 127.0.0.1", "daemonize no", f"dir {self.dir}",
            f"logfile {os.path.join(self.dir, 'sentinel.log')}",
            f"sentinel monitor {name} 127.0.0.1 {master_port} {quorum}",
            f"sentinel down-after-milliseconds {name} {down_after_ms}",
            f"sentinel failover-timeout {name} {failover_timeout_ms}",
            f"sentinel parallel-syncs {name} 1",
        ]
        if auth_pass:
            lines.append(f"sentinel auth-pass {name} {auth_pass}")
        if requirepass:
            # Clients and the other sentinels both authenticate with it.
            lines += [f"requirepass {requirepass}", f"sentinel sentinel-pass {requirepass}"]
        with open(self.conf, "w") as f:
            f.write("\n".join(lines) + "\n")
        self.proc = None

    def url(self, password=None, db=0):
        auth = f":{password}@" if password else ""
        return f"sentinel://{auth}127.0.0.1:{self.port}/{db}"

    def client(self):
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=5,
                           password=self.requirepass)

    def start(self, timeout=10.0):
        exe = shutil.which("redis-server")
        if exe is None:
            raise RuntimeError("redis-server not found on PATH: install it (apt-get install redis-server)")
        self.proc = subprocess.Popen([exe, self.conf, "--sentinel"], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"sentinel on {self.port} exited ({self.proc.returncode}): "
                                   f"{self.proc.stderr.read().decode(errors='replace')}")
            try:
                if self.client().ping():
                    return self
            except redis.RedisError:
                time.sleep(0.05)
        raise RuntimeError(f"sentinel on {self.port} did not answer within {timeout}s")

    def master(self):
        """SENTINEL MASTER <name> as a dict."""
        return self.client().sentinel_master(self.name)

    def master_port(self):
        """The port of the master this sentinel names now."""
        host, port = self.client().sentinel_get_master_addr_by_name(self.name)
        return int(port)

    def log_tail(self, n=2000):
        try:
            with open(os.path.join(self.dir, "sentinel.log")) as f:
                return f.read()[-n:]
        except OSError:
            return ""

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)
