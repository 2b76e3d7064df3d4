//! `#[task]` options for limits end up in the task's `TaskOptions`.

use rcelery::task::{Seconds, TaskResult};
use rcelery::Value;

#[rcelery::task(
    name = "t.limited",
    time_limit = 10,
    soft_time_limit = 2.5,
    rate_limit = "10/m"
)]
async fn limited() -> TaskResult<Value> {
    Ok(Value::None)
}

#[rcelery::task(name = "t.numeric_rate", rate_limit = 5, inline)]
fn numeric_rate() -> TaskResult<Value> {
    Ok(Value::None)
}

#[test]
fn limit_options_are_kept_as_written() {
    let o = limited::task().options;
    assert_eq!(o.time_limit, Some(Seconds::Int(10)));
    assert_eq!(o.soft_time_limit, Some(Seconds::Float(2.5)));
    assert_eq!(o.rate_limit.as_deref(), Some("10/m"));
    assert_eq!(rcelery::worker::parse_rate("10/m"), Ok(Some(10.0 / 60.0)));
    let o = numeric_rate::task().options;
    assert_eq!(o.rate_limit.as_deref(), Some("5"));
    assert_eq!(o.time_limit, None);
}
