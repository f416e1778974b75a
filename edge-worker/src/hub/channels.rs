//! The guild's channel list ([`GuildChannels`]) in the hub's SQLite storage (table `guild`),
//! written in the same synchronous section as the ingest that changed it, and the check the
//! command path asks for before a command may go to the holder.

use crate::guild_channels::{ChannelRefusal, GuildChannels};
use contracts::{ErrorCode, ErrorDetail, Snowflake};
use serde::Deserialize;
use worker::*;

#[derive(Deserialize)]
struct Row {
    value: String,
}

pub(crate) struct Channels {
    pub(crate) list: GuildChannels,
    guild: Option<Snowflake>,
    sql: SqlStorage,
    dirty: bool,
}

impl Channels {
    pub(crate) fn open(state: &State, guild: Option<Snowflake>) -> Result<Channels> {
        let sql = state.storage().sql();
        sql.exec(
            "CREATE TABLE IF NOT EXISTS guild (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
            None,
        )?;
        let rows: Vec<Row> = sql
            .exec("SELECT value FROM guild WHERE key = 'channels'", None)?
            .to_array()?;
        let list = rows
            .into_iter()
            .next()
            .and_then(|r| serde_json::from_str(&r.value).ok())
            .unwrap_or_default();
        Ok(Channels {
            list,
            guild,
            sql,
            dirty: false,
        })
    }

    pub(crate) fn set_guild(&mut self, guild: Snowflake) {
        self.guild = Some(guild);
    }

    pub(crate) fn feed(&mut self, kind: &str, d: &str) {
        if self.list.feed(kind, self.guild, d) {
            self.dirty = true;
        }
    }

    pub(crate) fn persist(&mut self) -> Result<()> {
        if self.dirty {
            let text =
                serde_json::to_string(&self.list).map_err(|e| Error::RustError(e.to_string()))?;
            self.sql.exec(
                "INSERT INTO guild (key, value) VALUES ('channels', ?)
                 ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                vec![text.into()],
            )?;
            self.dirty = false;
        }
        Ok(())
    }

    /// Whether a command may act on `channel`, as an error detail for the browser if not.
    pub(crate) fn check(&self, channel: Snowflake) -> std::result::Result<(), ErrorDetail> {
        self.list.check(channel).map_err(|r| match r {
            ChannelRefusal::Unknown => ErrorDetail {
                code: ErrorCode::HolderUnavailable,
                message: "the guild's channels are not known yet (no GUILD_CREATE from the holder)"
                    .into(),
                field: None,
            },
            ChannelRefusal::NotInGuild => ErrorDetail {
                code: ErrorCode::Forbidden,
                message: format!("channel {channel} is not a channel of this guild"),
                field: Some("channel_id".into()),
            },
        })
    }
}
