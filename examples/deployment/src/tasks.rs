//! The deployment's tasks (python-fixtures/tasks/async_tasks.py), under the same names.

use chrono::{DateTime, Timelike};
use lettre::message::header::ContentType;
use lettre::{AsyncTransport, Message};
use sqlx::PgPool;

use rcelery::{State, TaskError, TaskResult};

use crate::resources::{ExportDir, Mailer};

/// The sender of every mail.
pub const MAIL_FROM: &str = "noreply@example.com";
const MAIL_SUBJECT: &str = "通知 notice";
const EXPORT_FILE: &str = "users.csv";
const EXPORT_HEADER: [&str; 4] = ["id", "username", "email", "date_joined"];

/// The body of the mail sent to `email`.
fn mail_text(email: &str) -> String {
    format!("您好 {email}，您的数据导出已完成。\nHello {email}, your export is ready.\n")
}

/// Sends a mail to `email`; returns '邮件发送成功 OK'.
#[rcelery::task(name = "tasks.async_tasks.send_mail")]
pub async fn send_mail(email: String, State(mailer): State<Mailer>) -> TaskResult<&'static str> {
    tracing::info!("send mail to {email}");
    let to = email
        .parse()
        .map_err(|e| TaskError::value_error(format!("invalid address {email:?}: {e}")))?;
    let message = Message::builder()
        .from(mailer.from.clone())
        .to(to)
        .subject(MAIL_SUBJECT)
        .header(ContentType::TEXT_PLAIN)
        .body(mail_text(&email))?;
    mailer.transport.send(message).await?;
    Ok("邮件发送成功 OK")
}

/// Writes the `users` table to `users.csv` in the export directory, as the Python task does
/// (header, rows in id order, `date_joined` as Python prints a UTC datetime); returns the
/// file name.
#[rcelery::task(name = "tasks.async_tasks.export_users")]
pub async fn export_users(
    email: String,
    State(pool): State<PgPool>,
    State(dir): State<ExportDir>,
) -> TaskResult<&'static str> {
    tracing::info!("export users for {email}");
    let rows: Vec<(i32, String, String, i64)> = sqlx::query_as(
        "SELECT id, username, email, (EXTRACT(EPOCH FROM date_joined) * 1000000)::int8 \
         FROM users ORDER BY id",
    )
    .fetch_all(&pool)
    .await?;
    // Python's csv module: CRLF line ends, quotes only where needed.
    let mut writer = csv::WriterBuilder::new()
        .terminator(csv::Terminator::CRLF)
        .from_writer(Vec::new());
    writer.write_record(EXPORT_HEADER)?;
    for (id, username, email, micros) in rows {
        writer.write_record([id.to_string(), username, email, python_utc(micros)?])?;
    }
    let bytes = writer
        .into_inner()
        .map_err(|e| TaskError::runtime_error(e.to_string()))?;
    let path = dir.0.join(EXPORT_FILE);
    tokio::task::spawn_blocking(move || std::fs::write(path, bytes))
        .await
        .map_err(|e| TaskError::runtime_error(e.to_string()))??;
    Ok(EXPORT_FILE)
}

/// `str()` of a UTC `datetime` `micros` after the epoch: `2024-05-01 08:30:00+00:00`, with
/// `.ffffff` when there are microseconds.
fn python_utc(micros: i64) -> Result<String, TaskError> {
    let t = DateTime::from_timestamp_micros(micros)
        .ok_or_else(|| TaskError::value_error(format!("date out of range: {micros}")))?;
    let fraction = if t.nanosecond() == 0 { "" } else { "%.6f" };
    Ok(t.format(&format!("%Y-%m-%d %H:%M:%S{fraction}+00:00"))
        .to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datetimes_read_as_python_prints_them() {
        assert_eq!(python_utc(0).unwrap(), "1970-01-01 00:00:00+00:00");
        assert_eq!(
            python_utc(1_714_552_200_000_123).unwrap(),
            "2024-05-01 08:30:00.000123+00:00"
        );
    }
}
