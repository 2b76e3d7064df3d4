//! `tasks/async_tasks.py`'s tasks, in Rust.

use rcelery::task::TaskResult;

/// `tasks.async_tasks.send_mail(email)`: logs the address, returns `"邮件发送成功 OK"`.
#[rcelery::task(name = "tasks.async_tasks.send_mail")]
pub async fn send_mail(email: String) -> TaskResult<String> {
    tracing::info!(email = %email, "sending mail");
    Ok("邮件发送成功 OK".to_owned())
}
