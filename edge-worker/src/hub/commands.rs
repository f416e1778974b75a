//! The hub's side of commands: the guild-channel check and the per-user request limit (asked by
//! the Worker before it forwards a command to the holder) and per-user delivery of `command.result`. The Worker has
//! already authenticated the caller and put the user in `actions::USER_HEADER`.

use super::{now_ms, Hub};
use crate::actions::{CHANNEL_HEADER, COMMAND_RESULT, USER_HEADER};
use crate::event::EdgeEvent;
use contracts::ErrorCode;
use std::cell::RefCell;
use std::rc::Rc;
use worker::*;

fn user(req: &Request) -> Result<Option<String>> {
    Ok(req.headers().get(USER_HEADER)?.filter(|u| !u.is_empty()))
}

/// `204` when `user` may send one more command now, else `429 rate_limited` with `Retry-After`.
pub(crate) fn admit(hub: &Rc<RefCell<Hub>>, req: &Request) -> Result<Response> {
    let Some(user) = user(req)? else {
        return super::error(ErrorCode::Internal, "no user on the admit request");
    };
    // The command's channel, when it has one, must be one of this guild's (never let a browser
    // make the bot act in another guild it is in). Commands without a channel (voice leave,
    // presence, member request) act on the hub's guild or the bot itself.
    let channel = match req.headers().get(CHANNEL_HEADER)? {
        None => None,
        Some(c) => match c.parse::<contracts::Snowflake>() {
            Ok(c) => Some(c),
            Err(_) => return super::error(ErrorCode::Internal, "bad channel on the admit request"),
        },
    };
    if let Some(Err(detail)) = channel.map(|c| hub.borrow().channels.check(c)) {
        let status = detail.code.http_status();
        let body = contracts::ErrorBody {
            version: contracts::Version,
            error: detail,
        };
        return super::json(status, body.to_json());
    }
    let verdict = {
        let mut h = hub.borrow_mut();
        let v = h.limiter.check(&user, now_ms());
        match v {
            Ok(()) => h.command_counters.admitted += 1,
            Err(_) => h.command_counters.rate_limited += 1,
        }
        v
    };
    match verdict {
        Ok(()) => Ok(Response::empty()?.with_status(204)),
        Err(secs) => {
            let resp = super::error(
                ErrorCode::RateLimited,
                format!("too many commands; retry after {secs} s"),
            )?;
            resp.headers().set("Retry-After", &secs.to_string())?;
            Ok(resp)
        }
    }
}

/// Stores the `command.result` whose JSON is the body as an event for the user alone (so a
/// stream that reconnects with `Last-Event-ID` replays it) and queues it on the user's open
/// streams; `204`.
pub(crate) async fn result(hub: &Rc<RefCell<Hub>>, mut req: Request) -> Result<Response> {
    let Some(user) = user(&req)? else {
        return super::error(ErrorCode::Internal, "no user on the result request");
    };
    let json = req.text().await?;
    let sent = {
        let mut h = hub.borrow_mut();
        let now = now_ms();
        let mut stored = [EdgeEvent {
            cursor: 0,
            at: 0,
            name: COMMAND_RESULT.into(),
            channel: None,
            data: crate::sse::one_line(json),
            user: Some(user.clone()),
        }];
        h.append(now, &mut stored)?;
        h.trim(now)?;
        // Only the user's streams select it (`EdgeEvent::is_for`).
        let sent = h.publish(now, &stored).events_out;
        h.command_counters.results += 1;
        h.command_counters.results_delivered += sent;
        if sent == 0 {
            h.command_counters.results_unseen += 1;
        }
        sent
    };
    console_log!("hub: command.result for user={user} queued on {sent} stream(s)");
    Ok(Response::empty()?.with_status(204))
}
