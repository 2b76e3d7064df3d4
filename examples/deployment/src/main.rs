//! The deployment's worker in Rust: its two tasks under their Celery names, with the
//! PostgreSQL pool and the SMTP client built once at start-up and handed to the tasks as
//! typed state. Run it as `rcelery-deployment worker -A tasks -Q default`, like `rcelery`.
//!
//! Start-up reads the same environment as the Django project and the Python tasks:
//! `DJANGO_DB_NAME`, `DJANGO_DB_HOST`, `DJANGO_DB_PORT`, `DJANGO_DB_USER`,
//! `DJANGO_DB_PASSWORD` (or `DATABASE_URL`), `SMTP_HOST`/`SMTP_PORT`, `EXPORT_DIR`.

#![forbid(unsafe_code)]

mod resources;
mod tasks;

fn main() -> std::process::ExitCode {
    let app = rcelery::App::new("tasks")
        .state(resources::ExportDir::from_env())
        .on_startup(resources::connect_database)
        .on_startup(resources::smtp_mailer)
        .on_shutdown(resources::close)
        .register(tasks::export_users::task())
        .register(tasks::send_mail::task());
    rcelery::cli::main(app)
}
