//! kombu's URL forms against real redis-server processes: a password given as `?password=`,
//! and `rediss://` with `ssl_cert_reqs`, `ssl_ca_certs`, client certificates and
//! `ssl_check_hostname` against a TLS server whose certificates `openssl` makes here.
//!
//! Each test starts its own redis-server on a free port (never 6379); needs `redis-server`
//! (built with TLS, as Debian's is) and `openssl` on PATH, and fails, never skips, without
//! them.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rcelery::redis_client::{self, RedisUrl, Timeouts};

const PASSWORD: &str = "S3cr&t/pa#ss?@";

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a free local port");
    listener.local_addr().expect("local address").port()
}

fn encoded(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// A private redis-server, killed on drop.
struct Server {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl Server {
    /// `extra` arguments after the usual ones; `tls` makes the port a TLS port.
    fn start(extra: &[&str], tls: bool) -> Server {
        let port = free_port();
        let dir =
            std::env::temp_dir().join(format!("rcelery-url-test-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let port_text = port.to_string();
        let mut args: Vec<&str> = vec!["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"];
        if tls {
            args.extend(["--port", "0", "--tls-port", &port_text]);
        } else {
            args.extend(["--port", &port_text]);
        }
        args.extend([
            "--requirepass",
            PASSWORD,
            "--dir",
            dir.to_str().expect("utf-8 temp dir"),
        ]);
        args.extend(extra);
        let child = Command::new("redis-server")
            .args(&args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start redis-server (is it installed?): {e}"));
        let server = Server { child, port, dir };
        server.wait_listening();
        server
    }

    fn wait_listening(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("redis-server on port {} did not start listening", self.port);
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn ping(url: &str) -> Result<String, String> {
    let parsed = RedisUrl::parse(url).map_err(|e| e.to_string())?;
    let timeouts = Timeouts {
        connect: Some(Duration::from_secs(10)),
        response: Some(Duration::from_secs(10)),
    };
    let mut conn = redis_client::connect_url(&parsed, timeouts)
        .await
        .map_err(|e| e.to_string())?;
    redis::cmd("PING")
        .query_async::<String>(&mut conn)
        .await
        .map_err(|e| e.to_string())
}

#[tokio::test]
async fn a_password_in_the_query_authenticates() {
    let server = Server::start(&[], false);
    let url = format!(
        "redis://127.0.0.1:{}/5?password={}",
        server.port,
        encoded(PASSWORD)
    );
    let mut conn = redis_client::connect(&url, Some(Duration::from_secs(10)))
        .await
        .expect("connect with ?password=");
    let _: () = redis::cmd("SET")
        .arg("k")
        .arg("v")
        .query_async(&mut conn)
        .await
        .expect("SET");
    let db5 = format!("redis://:{}@127.0.0.1:{}/5", encoded(PASSWORD), server.port);
    let mut check = redis_client::connect(&db5, Some(Duration::from_secs(10)))
        .await
        .expect("connect with user info");
    let v: Option<String> = redis::cmd("GET")
        .arg("k")
        .query_async(&mut check)
        .await
        .expect("GET");
    assert_eq!(
        v.as_deref(),
        Some("v"),
        "?password= URL selected database 5"
    );

    let wrong = format!("redis://127.0.0.1:{}/5?password=wrong", server.port);
    let e = ping(&wrong).await.expect_err("a wrong password is refused");
    assert!(!e.contains("wrong") || e.contains("WRONGPASS"), "{e}");
}

/// A CA, and server and client certificates it signed, as PEM files in `dir`.
struct Certs {
    ca: PathBuf,
    server_cert: PathBuf,
    server_key: PathBuf,
    client_cert: PathBuf,
    client_key: PathBuf,
    client_combined: PathBuf,
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("cannot run openssl (is it installed?): {e}"));
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn make_certs(dir: &Path) -> Certs {
    std::fs::create_dir_all(dir).expect("cert dir");
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let mut ca = vec![
        "req",
        "-x509",
        "-days",
        "2",
        "-subj",
        "/CN=rcelery test CA",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
    ];
    ca.extend(ec);
    ca.extend([
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    ]);
    openssl(dir, &ca);
    for (name, cn, usage) in [
        ("server", "localhost", "serverAuth"),
        ("client", "rcelery", "clientAuth"),
    ] {
        let (key, csr, pem, ext) = (
            format!("{name}.key"),
            format!("{name}.csr"),
            format!("{name}.pem"),
            format!("{name}.ext"),
        );
        let san = if name == "server" {
            "subjectAltName=DNS:localhost\n"
        } else {
            ""
        };
        std::fs::write(
            dir.join(&ext),
            format!("{san}basicConstraints=CA:FALSE\nextendedKeyUsage={usage}\n"),
        )
        .expect("ext file");
        let subj = format!("/CN={cn}");
        let mut req = vec!["req", "-subj", &subj, "-keyout", &key, "-out", &csr];
        req.extend(ec);
        openssl(dir, &req);
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                "2",
                "-out",
                &pem,
                "-extfile",
                &ext,
            ],
        );
    }
    let combined = [
        std::fs::read(dir.join("client.pem")).expect("pem"),
        std::fs::read(dir.join("client.key")).expect("key"),
    ]
    .concat();
    std::fs::write(dir.join("client-combined.pem"), combined).expect("combined pem");
    Certs {
        ca: dir.join("ca.pem"),
        server_cert: dir.join("server.pem"),
        server_key: dir.join("server.key"),
        client_cert: dir.join("client.pem"),
        client_key: dir.join("client.key"),
        client_combined: dir.join("client-combined.pem"),
    }
}

fn path(p: &Path) -> String {
    encoded(p.to_str().expect("utf-8 path"))
}

#[tokio::test]
async fn rediss_urls_verify_the_server_and_present_client_certificates() {
    let dir = std::env::temp_dir().join(format!("rcelery-url-certs-{}", std::process::id()));
    let certs = make_certs(&dir);
    let (cert, key, ca) = (
        certs.server_cert.to_str().unwrap(),
        certs.server_key.to_str().unwrap(),
        certs.ca.to_str().unwrap(),
    );
    let server = Server::start(
        &[
            "--tls-cert-file",
            cert,
            "--tls-key-file",
            key,
            "--tls-ca-cert-file",
            ca,
            "--tls-auth-clients",
            "yes",
        ],
        true,
    );
    let pw = encoded(PASSWORD);
    let base = |host: &str| format!("rediss://:{pw}@{host}:{}/0", server.port);
    let client = format!(
        "&ssl_certfile={}&ssl_keyfile={}",
        path(&certs.client_cert),
        path(&certs.client_key)
    );
    let ca = path(&certs.ca);

    // Verified against the CA; the host name is not checked (redis-py 5's default).
    let ok = format!(
        "{}?ssl_cert_reqs=required&ssl_ca_certs={ca}{client}",
        base("127.0.0.1")
    );
    assert_eq!(ping(&ok).await.as_deref(), Ok("PONG"), "{ok}");
    let ok = format!(
        "{}?ssl_cert_reqs=CERT_OPTIONAL&ssl_ca_certs={ca}{client}",
        base("127.0.0.1")
    );
    assert_eq!(ping(&ok).await.as_deref(), Ok("PONG"));
    // The key read from the certificate file, as Python's load_cert_chain does.
    let combined = format!(
        "{}?ssl_cert_reqs=required&ssl_ca_certs={ca}&ssl_certfile={}",
        base("127.0.0.1"),
        path(&certs.client_combined)
    );
    assert_eq!(ping(&combined).await.as_deref(), Ok("PONG"));
    // With ssl_check_hostname the certificate (for localhost) must name the host.
    let named = format!(
        "{}?ssl_cert_reqs=required&ssl_ca_certs={ca}&ssl_check_hostname=true{client}",
        base("localhost")
    );
    assert_eq!(ping(&named).await.as_deref(), Ok("PONG"), "{named}");
    let misnamed = format!(
        "{}?ssl_cert_reqs=required&ssl_ca_certs={ca}&ssl_check_hostname=true{client}",
        base("127.0.0.1")
    );
    let e = ping(&misnamed)
        .await
        .expect_err("the certificate does not name 127.0.0.1");
    eprintln!("host name not in the certificate: {e}");
    assert!(!e.contains(PASSWORD), "{e}");
    // Not checked at all: no CA needed.
    let insecure = format!("{}?ssl_cert_reqs=none{client}", base("127.0.0.1"));
    assert_eq!(ping(&insecure).await.as_deref(), Ok("PONG"));
    // Required, and the system's CAs do not know this one.
    let unknown_ca = format!("{}?ssl_cert_reqs=required{client}", base("127.0.0.1"));
    let e = ping(&unknown_ca)
        .await
        .expect_err("an unknown CA is refused");
    eprintln!("unknown CA: {e}");
    assert!(!e.contains(PASSWORD), "{e}");
    // The server asks for a client certificate.
    let no_client_cert = format!(
        "{}?ssl_cert_reqs=required&ssl_ca_certs={ca}",
        base("127.0.0.1")
    );
    let e = ping(&no_client_cert)
        .await
        .expect_err("the server requires a client certificate");
    eprintln!("no client certificate: {e}");
    // A CA file that is not there.
    let missing = format!(
        "{}?ssl_cert_reqs=required&ssl_ca_certs=%2Fnonexistent%2Fca.pem{client}",
        base("127.0.0.1")
    );
    let e = ping(&missing).await.expect_err("missing CA file");
    assert!(e.contains("ssl_ca_certs /nonexistent/ca.pem"), "{e}");

    let _ = std::fs::remove_dir_all(&dir);
}
