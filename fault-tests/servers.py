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


RABBIT_SBIN = "/usr/lib/rabbitmq/bin"


def _rabbit_tool(name):
    """The unwrapped RabbitMQ script `name` (Debian's /usr/sbin wrappers would switch to the
    `rabbitmq` user and its cookie; the private node runs as whoever runs the tests)."""
    path = os.path.join(RABBIT_SBIN, name)
    if os.access(path, os.X_OK):
        return path
    found = shutil.which(name)
    if found is None:
        raise RuntimeError(f"{name} not found: install RabbitMQ (apt-get install rabbitmq-server)")
    return found


def _port_free(port):
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def claim_rabbit_port():
    """(port, lock): an AMQP port in 5680–5699 whose distribution port (+20000) and AMQPS port
    (+30000) are free too,
    claimed with a lock file held as long as `lock` is open, so that two test runs started
    at once never pick the same port before either node has bound it."""
    import fcntl
    for port in range(5680, 5700):
        lock = open(os.path.join(tempfile.gettempdir(), f"rcelery-fault-rabbit-{port}.lock"), "w")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            lock.close()
            continue
        if _port_free(port) and _port_free(port + 20000) and _port_free(port + 30000):
            return port, lock
        lock.close()
    raise RuntimeError("no free port pair in 5680-5699 / 25680-25699 for a private RabbitMQ")


class PrivateRabbit:
    """A RabbitMQ node of its own (own node name, ports, Mnesia and log directories, empty
    plugin list, own Erlang cookie in its own HOME) that tests can stop and start the app of,
    cut every connection of, and kill -9. It registers with the machine's epmd, so it runs
    beside any other node; it never touches another node.

    `user`/`password` is an administrator the tests connect as; `add_vhost` gives a test a
    vhost of its own on the shared node."""

    def __init__(self, user="faulty", password="s3cret-pw"):
        self.port, self._port_lock = claim_rabbit_port()
        self.dist_port = self.port + 20000
        self.node = f"rcelery-fault-{self.port}@localhost"
        self.user, self.password = user, password
        self.dir = tempfile.mkdtemp(prefix=f"rcelery-fault-rabbit-{self.port}-")
        self.log_dir = os.path.join(self.dir, "log")
        # An AMQPS listener beside the plain one, with a throw-away CA (`tls_ca`).
        self.tls_port = self.port + 30000
        self.tls_ca = None
        self.proc = None
        self._write_files()

    def _write_files(self):
        os.makedirs(self.log_dir, exist_ok=True)
        with open(os.path.join(self.dir, "enabled_plugins"), "w") as f:
            f.write("[].\n")
        from pathlib import Path
        from harness.tls import make_certs
        certs = Path(self.dir) / "tls"
        certs.mkdir()
        self.tls_ca, cert, key = make_certs(certs)
        with open(os.path.join(self.dir, "rabbitmq.conf"), "w") as f:
            f.write(f"listeners.tcp.1 = 127.0.0.1:{self.port}\n"
                    f"listeners.ssl.1 = 127.0.0.1:{self.tls_port}\n"
                    f"ssl_options.cacertfile = {self.tls_ca}\n"
                    f"ssl_options.certfile = {cert}\n"
                    f"ssl_options.keyfile = {key}\n"
                    "ssl_options.verify = verify_none\n"
                    "ssl_options.fail_if_no_peer_cert = false\n"
                    "loopback_users = none\n"
                    f"log.file = {os.path.join(self.log_dir, 'node.log')}\n"
                    "log.file.level = info\n")
        # An env file of our own, so /etc/rabbitmq/rabbitmq-env.conf (the shared node's name)
        # is not read.
        with open(os.path.join(self.dir, "rabbitmq-env.conf"), "w") as f:
            f.write("")

    def environment(self):
        env = {k: v for k, v in os.environ.items() if not k.startswith(("RABBITMQ_", "ERL_"))}
        env.update({
            "HOME": self.dir,  # the Erlang cookie of this node and its CLI: $HOME/.erlang.cookie
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_MNESIA_BASE": os.path.join(self.dir, "mnesia"),
            "RABBITMQ_LOG_BASE": self.log_dir,
            "RABBITMQ_PID_FILE": os.path.join(self.dir, "node.pid"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": os.path.join(self.dir, "enabled_plugins"),
            "RABBITMQ_CONFIG_FILE": os.path.join(self.dir, "rabbitmq.conf"),
            "RABBITMQ_CONF_ENV_FILE": os.path.join(self.dir, "rabbitmq-env.conf"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": os.path.join(self.dir, "advanced.config"),
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
            "ERL_EPMD_ADDRESS": "127.0.0.1",
        })
        return env

    def url(self, vhost="/", user=None, password=None, tls=False):
        """amqp:// URL of the plain listener, or with `tls` amqps:// of the TLS one (by the
        name `localhost`, which the server certificate carries)."""
        from urllib.parse import quote
        user = user or self.user
        password = self.password if password is None else password
        if tls:
            return f"amqps://{user}:{password}@localhost:{self.tls_port}/{quote(vhost, safe='')}"
        return f"amqp://{user}:{password}@127.0.0.1:{self.port}/{quote(vhost, safe='')}"

    # -- the node -----------------------------------------------------------------------
    def start(self, timeout=60.0):
        """Start the node (again, on the same data) and wait until it accepts AMQP logins;
        fail loudly with its log."""
        log = open(os.path.join(self.dir, "stdout.log"), "ab")
        self.proc = subprocess.Popen([_rabbit_tool("rabbitmq-server")], env=self.environment(),
                                     cwd=self.dir, stdout=log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"rabbitmq-server {self.node} exited ({self.proc.returncode}):\n"
                                   f"{self.log_tail()}")
            if self.ctl("await_startup", "--timeout", "2", check=False).returncode == 0:
                self._ensure_user()
                self.wait_accepting(deadline - time.monotonic())
                return self
            time.sleep(0.5)
        raise RuntimeError(f"rabbitmq-server {self.node} did not start within {timeout}s:\n"
                           f"{self.log_tail()}")

    def _ensure_user(self):
        users = self.ctl("list_users", "-q", "--no-table-headers").stdout
        if not any(line.split("\t")[0] == self.user for line in users.splitlines()):
            self.ctl("add_user", self.user, self.password)
            self.ctl("set_user_tags", self.user, "administrator")
        self.ctl("set_permissions", "-p", "/", self.user, ".*", ".*", ".*")

    def wait_accepting(self, timeout=30.0):
        """Until an AMQP login on the default vhost works (the app may come up after the VM)."""
        import kombu
        deadline = time.monotonic() + max(timeout, 1.0)
        last = None
        while time.monotonic() < deadline:
            try:
                with kombu.Connection(self.url("/"), connect_timeout=2) as conn:
                    conn.connect()
                    return
            except Exception as e:  # not up yet
                last = e
                time.sleep(0.2)
        raise RuntimeError(f"{self.node} accepts no AMQP login: {last!r}\n{self.log_tail()}")

    def ctl(self, *args, check=True, timeout=60):
        """rabbitmqctl -n NODE ARGS (with this node's cookie)."""
        done = subprocess.run([_rabbit_tool("rabbitmqctl"), "-n", self.node, *args],
                              env=self.environment(), capture_output=True, text=True,
                              timeout=timeout)
        if check and done.returncode != 0:
            raise RuntimeError(f"rabbitmqctl {' '.join(args)} failed ({done.returncode}): "
                               f"{done.stdout} {done.stderr}")
        return done

    def stop_app(self):
        """`rabbitmqctl stop_app`: the broker application stops (every client connection is
        closed, the VM stays up)."""
        self.ctl("stop_app")

    def start_app(self):
        self.ctl("start_app")
        self.wait_accepting()

    def app_running(self):
        """The broker application accepts an AMQP login (quicker to ask than rabbitmqctl)."""
        import kombu
        try:
            with kombu.Connection(self.url("/"), connect_timeout=2) as conn:
                conn.connect()
            return True
        except Exception:  # refused, reset, or not open yet
            return False

    def close_all_connections(self, reason="rcelery fault test", vhost=None):
        """`rabbitmqctl close_all_connections`: the server closes every client connection of
        `vhost` (of every vhost when None) with connection.close 320 CONNECTION_FORCED and
        `reason`."""
        scope = ["--vhost", vhost, "--limit", "1000"] if vhost else ["--global"]
        self.ctl("close_all_connections", *scope, reason)

    def beam_pid(self):
        with open(os.path.join(self.dir, "node.pid")) as f:
            return int(f.read().strip())

    def kill(self):
        """kill -9 of the Erlang VM: no clean shutdown, connections drop without a close."""
        if self.proc and self.proc.poll() is None:
            try:
                os.kill(self.beam_pid(), signal.SIGKILL)
            except (OSError, ValueError):
                pass
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def restart(self, down_for=0.0):
        """kill -9, stay down `down_for` seconds, start again (durable queues and persistent
        messages come back from disk)."""
        self.kill()
        time.sleep(down_for)
        return self.start()

    # -- per-test vhosts and inspection ---------------------------------------------------
    def add_vhost(self, name):
        """A new vhost the user may do anything in (the node's data is fresh at each start
        of a run, so names do not clash)."""
        self.ctl("add_vhost", name)
        self.ctl("set_permissions", "-p", name, self.user, ".*", ".*", ".*")
        return name

    def delete_vhost(self, name):
        self.ctl("delete_vhost", name, check=False)

    def queue_counts(self, vhost="/"):
        """{queue: (messages, ready, unacked)} of `vhost`."""
        out = self.ctl("list_queues", "-p", vhost, "-q", "--no-table-headers", "name", "messages",
                       "messages_ready", "messages_unacknowledged").stdout
        counts = {}
        for line in out.splitlines():
            parts = line.split("\t")
            if len(parts) == 4 and parts[1].isdigit():
                counts[parts[0]] = tuple(int(p) for p in parts[1:])
        return counts

    def delete_queue(self, name, vhost="/"):
        self.ctl("delete_queue", "-p", vhost, name)

    def diagnostics(self, vhost=None):
        """Queues, consumers, channels and connections of `vhost` (all when None), for a
        failing test's report."""
        scope = ["-p", vhost] if vhost else []
        parts = []
        for args in (["list_queues", *scope, "name", "messages_ready", "messages_unacknowledged",
                      "consumers", "state"],
                     ["list_consumers", *scope],
                     ["list_channels", "name", "consumer_count", "messages_unacknowledged",
                      "prefetch_count", "global_prefetch_count"],
                     ["list_connections", "name", "vhost", "state", "channels"]):
            try:
                done = self.ctl(*args, check=False, timeout=30)
                parts.append(f"$ rabbitmqctl {' '.join(args)}\n{done.stdout}{done.stderr}")
            except Exception as e:  # the node may be down: say so
                parts.append(f"$ rabbitmqctl {' '.join(args)}: {e!r}")
        return "\n".join(parts)

    def log_tail(self, n=4000):
        text = ""
        for name in ("stdout.log", os.path.join("log", "node.log")):
            try:
                with open(os.path.join(self.dir, name), errors="replace") as f:
                    text += f"--- {name}\n{f.read()[-n:]}\n"
            except OSError:
                pass
        return text

    def stop(self):
        """`rabbitmqctl stop`, kill -9 if that does not end it; remove its directory."""
        if self.proc and self.proc.poll() is None:
            self.ctl("stop", check=False)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)
        self._port_lock.close()
