"""Start and stop a dedicated redis-server (never the system one on 6379)."""
import shutil
import subprocess
import tempfile
import time

import redis


class RedisServer:
    """A private redis-server process on `port`, optionally password-protected, no persistence."""

    def __init__(self, port, password=None):
        self.port = int(port)
        self.password = password
        self.proc = None
        self.dir = None

    def url(self, db=0):
        """redis:// URL for database `db` (with password when set)."""
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/{db}"

    def client(self, db=0, **kw):
        return redis.Redis(host="127.0.0.1", port=self.port, password=self.password, db=db, **kw)

    def start(self, timeout=10.0):
        """Start the server; raise RuntimeError (never skip) if that is impossible."""
        exe = shutil.which("redis-server")
        if exe is None:
            raise RuntimeError("redis-server not found on PATH: install it (apt-get install redis-server)")
        if self._answers():
            raise RuntimeError(f"port {self.port} is already serving Redis; refusing to reuse it "
                               f"(set another port via the environment)")
        self.dir = tempfile.mkdtemp(prefix=f"rcelery-redis-{self.port}-")
        cmd = [exe, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
               "--appendonly", "no", "--dir", self.dir, "--daemonize", "no",
               "--logfile", f"{self.dir}/redis.log"]
        if self.password:
            cmd += ["--requirepass", self.password]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode(errors="replace")
                raise RuntimeError(f"redis-server on port {self.port} exited "
                                   f"({self.proc.returncode}): {err} {self._log_tail()}")
            try:
                if self.client().ping():
                    return self
            except redis.RedisError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"redis-server on port {self.port} did not answer within {timeout}s")

    def _answers(self):
        try:
            return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=0.5).ping()
        except redis.AuthenticationError:
            return True
        except redis.ResponseError:
            return True
        except redis.RedisError:
            return False

    def _log_tail(self):
        try:
            with open(f"{self.dir}/redis.log") as f:
                return f.read()[-2000:]
        except OSError:
            return ""

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.dir:
            shutil.rmtree(self.dir, ignore_errors=True)
        self.proc = None
