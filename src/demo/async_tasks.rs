//! `tasks/async_tasks.py`'s tasks, in Rust.

use rcelery::task::TaskResult;

/// `tasks.async_tasks.send_mail(email)`: logs the address, returns `"邮件发送成功 OK"`.
/// The real-world version takes 5 s; like the Python fixture, this one waits
/// `SEND_MAIL_SLEEP_SECONDS` (default 0).
#[rcelery::task(name = "tasks.async_tasks.send_mail")]
pub async fn send_mail(email: String) -> TaskResult<String> {
    tracing::info!(email = %email, "sending mail");
    let delay = std::env::var("SEND_MAIL_SLEEP_SECONDS")
        .ok()
        .and_then(|s| s.parse::<f64>().ok());
    if let Some(secs) = delay.filter(|s| s.is_finite() && *s > 0.0) {
        tokio::time::sleep(std::time::Duration::from_secs_f64(secs)).await;
    }
    Ok("邮件发送成功 OK".to_owned())
}
