"""Application tasks registered through `imports`, names auto-derived (`tasks.async_tasks.*`)."""
import os
import time

from tasks.task import app


@app.task
def send_mail(email):
    """Pretend to send a mail to `email`.

    The real-world version sleeps 5 s; here the delay is env SEND_MAIL_SLEEP_SECONDS
    (default 0).
    """
    print(f"send mail to {email}")
    time.sleep(float(os.environ.get("SEND_MAIL_SLEEP_SECONDS", "0")))
    return "邮件发送成功 OK"
