//! Browser and edge → holder command bodies: the same bytes are parsed as each of `SendMessage`,
//! `AddReaction`, `TypingStart` and `HolderCommand` with `contracts::validate::parse`.
//!
//! Checks on every accepted value: the rules hold independently of `validate` (content 1..=2000
//! characters and not only whitespace, nonce 1..=25 characters, the emoji passes
//! `contracts::validate::check_emoji` and carries no URL, markup, whitespace or control character,
//! snowflakes are non-zero); no key outside the contract was accepted; serialize → parse gives an
//! equal value and serializing is a fixed point.

#![no_main]

use contracts::{validate, AddReaction, Command, HolderCommand, SendMessage, TypingStart};
use libfuzzer_sys::fuzz_target;
use serde::{de::DeserializeOwned, Serialize};
use std::fmt::Debug;

#[path = "common/keys.rs"]
mod keys;

fn check_send(m: &SendMessage) {
    let chars = m.content.chars().count();
    assert!(
        (1..=2000).contains(&chars),
        "content of {chars} characters accepted"
    );
    assert!(
        m.content.chars().any(|c| !c.is_whitespace()),
        "whitespace-only content accepted"
    );
    if let Some(n) = &m.nonce {
        let n = n.chars().count();
        assert!((1..=25).contains(&n), "nonce of {n} characters accepted");
    }
    assert_ne!(m.channel_id.get(), 0);
}

fn check_reaction(r: &AddReaction) {
    assert!(validate::check_emoji(&r.emoji).is_ok());
    assert!(!r.emoji.is_empty(), "empty emoji accepted");
    assert!(
        !r.emoji.chars().any(|c| c.is_whitespace()
            || c.is_control()
            || matches!(c, '/' | '?' | '#' | '%' | '<' | '>')),
        "emoji {:?} would be unsafe in a route",
        r.emoji
    );
    assert_ne!(r.channel_id.get(), 0);
    assert_ne!(r.message_id.get(), 0);
}

fn check_command(c: &Command) {
    match c {
        Command::SendMessage(m) => check_send(m),
        Command::AddReaction(r) => check_reaction(r),
        Command::TypingStart(t) => assert_ne!(t.channel_id.get(), 0),
        Command::UpdateVoiceState(v) => assert!(v.channel_id.is_none_or(|c| c.get() != 0)),
        Command::UpdatePresence(p) => {
            for a in p.activities.iter().flatten() {
                let n = a.name.chars().count();
                assert!(
                    (1..=128).contains(&n) && a.kind <= 5,
                    "activity {a:?} accepted"
                );
            }
        }
        Command::RequestGuildMembers(r) => {
            assert!(r.query.is_some() != r.user_ids.is_some(), "{r:?} accepted");
            assert!(r.limit <= 100);
            assert!(r.nonce.as_ref().is_none_or(|n| (1..=32).contains(&n.len())));
        }
    }
}

/// Serialize → parse → equal, no unknown key survived, and serialization is a fixed point.
fn round_trip<T>(data: &[u8], value: &T)
where
    T: Serialize + DeserializeOwned + validate::Validate + PartialEq + Debug,
{
    let json = serde_json::to_vec(value).expect("an accepted command serializes");
    let input = std::str::from_utf8(data).expect("accepted input is UTF-8");
    let output = std::str::from_utf8(&json).expect("serde_json writes UTF-8");
    keys::input_keys_survive(input, output, &[], "");
    let again: T = validate::parse(&json).unwrap_or_else(|e| {
        panic!(
            "serialized value refused: {e}\n{}",
            String::from_utf8_lossy(&json)
        )
    });
    assert_eq!(value, &again);
    assert_eq!(json, serde_json::to_vec(&again).expect("serializes"));
}

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = validate::parse::<SendMessage>(data) {
        check_send(&m);
        round_trip(data, &m);
    }
    if let Ok(r) = validate::parse::<AddReaction>(data) {
        check_reaction(&r);
        round_trip(data, &r);
    }
    if let Ok(t) = validate::parse::<TypingStart>(data) {
        assert_ne!(t.channel_id.get(), 0);
        round_trip(data, &t);
    }
    if let Ok(h) = validate::parse::<HolderCommand>(data) {
        check_command(&h.command);
        assert_ne!(h.guild_id.get(), 0);
        round_trip(data, &h);
    }
});
