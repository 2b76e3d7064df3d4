//! The demo app `tasks`, compiled into the `rcelery` binary. It mirrors
//! `python-fixtures/tasks/` task for task, and is the example of writing your own binary:
//! define tasks with `#[rcelery::task]`, register them on an [`rcelery::App`], hand it to
//! [`rcelery::cli::main`].

mod async_tasks;
mod schedules;
mod task;

/// The `tasks` app with every demo task registered.
pub fn app() -> rcelery::App {
    rcelery::App::new("tasks")
        .register(task::add::task())
        .register(task::mul::task())
        .register(task::xsum::task())
        .register(task::echo::task())
        .register(schedules::my_corn_minder::task())
        .register(task::fail::task())
        .register(task::sleep::task())
        .register(task::block::task())
        .register(task::sleep_soft::task())
        .register(task::block_soft::task())
        .register(task::limited::task())
        .register(task::noop::task())
        .register(task::retry_until::task())
        .register(task::flaky::task())
        .register(task::reject::task())
        .register(async_tasks::send_mail::task())
}
