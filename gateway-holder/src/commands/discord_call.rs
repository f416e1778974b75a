//! How each command becomes a Discord REST call: method, route (for rate-limit buckets), path and
//! body. Every message send carries a `nonce` with `enforce_nonce: true`, so a retried send returns
//! the first message instead of posting a duplicate.

use super::ratelimit::Route;
use contracts::Command;
use serde_json::json;

/// A ready-to-send Discord request.
#[derive(Clone, Debug, PartialEq)]
pub struct DiscordCall {
    pub route: Route,
    /// JSON body, if the route takes one.
    pub body: Option<serde_json::Value>,
}

/// The nonce for a message send: the browser's, or one derived from the command id (stable across
/// retries of the same command, at most 25 characters as Discord requires).
pub fn nonce_for(command_id: &str, given: Option<&str>) -> String {
    match given {
        Some(n) => n.to_string(),
        None => command_id
            .chars()
            .rev()
            .take(25)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect(),
    }
}

/// Percent-encodes an emoji for the reaction route (`name:id` keeps its colon encoded too).
fn encode_path_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The REST call of a REST command; `None` for a Gateway command (see `gateway_call`).
pub fn discord_call(command_id: &str, command: &Command) -> Option<DiscordCall> {
    Some(match command {
        Command::SendMessage(m) => {
            let channel = m.channel_id.to_string();
            DiscordCall {
                route: Route {
                    method: "POST",
                    template: "/channels/{channel_id}/messages",
                    path: format!("/channels/{channel}/messages"),
                    major: channel,
                },
                body: Some(json!({
                    "content": m.content,
                    "nonce": nonce_for(command_id, m.nonce.as_deref()),
                    "enforce_nonce": true,
                })),
            }
        }
        Command::AddReaction(r) => {
            let channel = r.channel_id.to_string();
            DiscordCall {
                route: Route {
                    method: "PUT",
                    template: "/channels/{channel_id}/messages/{message_id}/reactions/{emoji}/@me",
                    path: format!(
                        "/channels/{channel}/messages/{}/reactions/{}/@me",
                        r.message_id,
                        encode_path_segment(&r.emoji)
                    ),
                    major: channel,
                },
                body: None,
            }
        }
        Command::TypingStart(t) => {
            let channel = t.channel_id.to_string();
            DiscordCall {
                route: Route {
                    method: "POST",
                    template: "/channels/{channel_id}/typing",
                    path: format!("/channels/{channel}/typing"),
                    major: channel,
                },
                body: None,
            }
        }
        Command::UpdateVoiceState(_)
        | Command::UpdatePresence(_)
        | Command::RequestGuildMembers(_) => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use contracts::{AddReaction, SendMessage, Snowflake, Version};

    #[test]
    fn message_sends_always_carry_an_enforced_nonce() {
        let cmd = Command::SendMessage(SendMessage {
            version: Version,
            channel_id: Snowflake(10),
            content: "hi".into(),
            nonce: None,
        });
        let call = discord_call("cmd-0123456789abcdef0123456789", &cmd).unwrap();
        assert_eq!(call.route.path, "/channels/10/messages");
        let body = call.body.unwrap();
        assert_eq!(body["enforce_nonce"], true);
        let nonce = body["nonce"].as_str().unwrap();
        assert!(nonce.chars().count() <= 25);
        assert_eq!(
            nonce,
            nonce_for("cmd-0123456789abcdef0123456789", None),
            "stable across retries"
        );
        assert_eq!(nonce_for("x", Some("mine")), "mine");
    }

    #[test]
    fn reaction_emoji_is_percent_encoded() {
        let cmd = Command::AddReaction(AddReaction {
            version: Version,
            channel_id: Snowflake(1),
            message_id: Snowflake(2),
            emoji: "👍".into(),
        });
        assert_eq!(
            discord_call("c", &cmd).unwrap().route.path,
            "/channels/1/messages/2/reactions/%F0%9F%91%8D/@me"
        );
        let custom = Command::AddReaction(AddReaction {
            version: Version,
            channel_id: Snowflake(1),
            message_id: Snowflake(2),
            emoji: "blob:99".into(),
        });
        assert_eq!(
            discord_call("c", &custom).unwrap().route.path,
            "/channels/1/messages/2/reactions/blob%3A99/@me"
        );
    }
}
