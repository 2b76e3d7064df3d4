"""Application tasks registered through `imports`, names auto-derived (`tasks.async_tasks.*`).

The deployment's two tasks, driven by the Django views of `djproject/views.py`:

* `send_mail(email)` sends a mail to `email` through the SMTP server that env `SMTP_HOST` /
  `SMTP_PORT` name (no server named: it only prints, as the fixture always did), and returns
  '邮件发送成功 OK';
* `export_users(email)` writes every row of the `users` table to `users.csv` in the directory
  env `EXPORT_DIR` names (default: the working directory) and returns the file's name.

The Rust port of both is examples/deployment/ (same names, same file, same mail).
"""
import csv
import os
import smtplib
import time
from email.message import EmailMessage
from pathlib import Path

from tasks.task import app

MAIL_FROM = "noreply@example.com"
MAIL_SUBJECT = "通知 notice"
EXPORT_FILE = "users.csv"
EXPORT_HEADER = ["id", "username", "email", "date_joined"]


def mail_text(email):
    """The body of the mail `send_mail` sends to `email`."""
    return f"您好 {email}，您的数据导出已完成。\nHello {email}, your export is ready.\n"


@app.task
def send_mail(email):
    """Send a mail to `email` (when SMTP_HOST is set), return '邮件发送成功 OK'.

    The real-world version sleeps 5 s; here the delay is env SEND_MAIL_SLEEP_SECONDS
    (default 0).
    """
    print(f"send mail to {email}")
    host = os.environ.get("SMTP_HOST")
    if host:
        msg = EmailMessage()
        msg["From"] = MAIL_FROM
        msg["To"] = email
        msg["Subject"] = MAIL_SUBJECT
        msg.set_content(mail_text(email))
        with smtplib.SMTP(host, int(os.environ.get("SMTP_PORT", "25")), timeout=30) as smtp:
            smtp.send_message(msg)
    time.sleep(float(os.environ.get("SEND_MAIL_SLEEP_SECONDS", "0")))
    return "邮件发送成功 OK"


@app.task
def export_users(email):
    """Write the users table to users.csv (in env EXPORT_DIR, default the working directory).

    One header row, then one row per user in id order; `date_joined` as Python writes a
    datetime (`2024-05-01 08:30:00+00:00`, microseconds when there are any). Returns the
    file name.
    """
    from users.models import Users

    print(f"export users for {email}")
    path = Path(os.environ.get("EXPORT_DIR") or ".") / EXPORT_FILE
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(EXPORT_HEADER)
        for user in Users.objects.all().order_by("id"):
            writer.writerow([user.id, user.username, user.email, user.date_joined])
    return EXPORT_FILE
