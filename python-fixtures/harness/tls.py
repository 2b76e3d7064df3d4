"""A throw-away certificate authority and a server certificate it signed, made with the
`openssl` command for tests that run TLS servers (Redis, PostgreSQL)."""
import subprocess


def _openssl(cwd, *args):
    proc = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True)
    if proc.returncode != 0:
        raise RuntimeError(f"openssl {args}: {proc.stderr.decode(errors='replace')}")


def make_certs(d):
    """A CA and a server certificate for localhost and 127.0.0.1 it signed (EC keys, PEM),
    written in the directory `d` (a Path); returns the paths of the CA certificate, the
    server certificate and the server key."""
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    _openssl(d, "req", "-x509", "-days", "2", "-subj", "/CN=rcelery test CA", "-keyout", "ca.key",
             "-out", "ca.pem", *ec, "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    (d / "server.ext").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n"
                                  "basicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n")
    _openssl(d, "req", "-subj", "/CN=localhost", "-keyout", "server.key", "-out", "server.csr", *ec)
    _openssl(d, "x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
             "-CAcreateserial", "-days", "2", "-out", "server.pem", "-extfile", "server.ext")
    return d / "ca.pem", d / "server.pem", d / "server.key"
