//! Is the holder link up? Every batch (keep-alives are empty batches) refreshes `last_seen` and
//! the holder's reported gateway state; a tick finds the link quiet after `LINK_QUIET_MS`. The
//! guild's availability (GUILD_CREATE / GUILD_DELETE) is part of the same `status`. A `status`
//! event is due whenever what browsers were last told changes.

use contracts::{GatewayState, GuildAvailability, LinkState, StatusEvent, Version};
use serde::{Deserialize, Serialize};

/// Persisted (as JSON) so a restarted hub knows what it last announced.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkTracker {
    pub last_seen: Option<u64>,
    pub gateway: Option<GatewayState>,
    /// The link state of the last `status` event stored, if any.
    pub announced: Option<LinkState>,
    /// The gateway state of the last `status` event stored.
    #[serde(default)]
    pub announced_gateway: Option<GatewayState>,
    /// The guild as Discord last reported it (None: no GUILD_CREATE / GUILD_DELETE yet).
    #[serde(default)]
    pub guild: Option<GuildAvailability>,
    /// The guild availability of the last `status` event stored.
    #[serde(default)]
    pub announced_guild: Option<GuildAvailability>,
}

impl LinkTracker {
    /// The link as of `now`.
    pub fn state(&self, now: u64, quiet_ms: u64) -> LinkState {
        match self.last_seen {
            Some(t) if now.saturating_sub(t) < quiet_ms => LinkState::Up,
            _ => LinkState::Down,
        }
    }

    pub fn status(&self, now: u64, quiet_ms: u64) -> StatusEvent {
        StatusEvent {
            version: Version,
            link: self.state(now, quiet_ms),
            gateway: self.gateway,
            last_seen: self.last_seen,
            guild: self.guild,
        }
    }

    /// The guild's availability changed (GUILD_CREATE / GUILD_DELETE of the hub's guild).
    /// Returns the `status` event to store, if browsers must hear about it.
    pub fn on_guild(
        &mut self,
        now: u64,
        guild: GuildAvailability,
        quiet_ms: u64,
    ) -> Option<StatusEvent> {
        self.guild = Some(guild);
        self.announce_if_changed(now, quiet_ms)
    }

    /// A batch or keep-alive arrived. Returns the `status` event to store, if browsers must
    /// hear about it (the link came back, or the gateway state changed).
    pub fn on_holder(
        &mut self,
        now: u64,
        gateway: Option<GatewayState>,
        quiet_ms: u64,
    ) -> Option<StatusEvent> {
        self.last_seen = Some(now);
        if gateway.is_some() {
            self.gateway = gateway;
        }
        self.announce_if_changed(now, quiet_ms)
    }

    /// Periodic check: returns a `status` event when the link has just gone quiet.
    pub fn on_tick(&mut self, now: u64, quiet_ms: u64) -> Option<StatusEvent> {
        // Only a link that was announced up can go down; a never-seen holder is reported
        // down in the connect-time status already.
        if self.announced != Some(LinkState::Up) {
            return None;
        }
        self.announce_if_changed(now, quiet_ms)
    }

    fn announce_if_changed(&mut self, now: u64, quiet_ms: u64) -> Option<StatusEvent> {
        let status = self.status(now, quiet_ms);
        if self.announced == Some(status.link)
            && self.announced_gateway == status.gateway
            && self.announced_guild == status.guild
        {
            return None;
        }
        self.announced = Some(status.link);
        self.announced_gateway = status.gateway;
        self.announced_guild = status.guild;
        Some(status)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn up_quiet_and_back() {
        let mut l = LinkTracker::default();
        assert_eq!(l.state(0, 100), LinkState::Down);
        assert_eq!(l.on_tick(10, 100), None);
        let up = l.on_holder(10, Some(GatewayState::Ready), 100).unwrap();
        assert_eq!(
            (up.link, up.gateway),
            (LinkState::Up, Some(GatewayState::Ready))
        );
        assert_eq!(
            l.on_holder(50, None, 100),
            None,
            "keep-alive, nothing changed"
        );
        assert_eq!(l.on_tick(149, 100), None);
        let down = l.on_tick(150, 100).unwrap();
        assert_eq!(down.link, LinkState::Down);
        assert_eq!(down.last_seen, Some(50));
        assert_eq!(l.on_tick(500, 100), None, "announced once");
        let back = l.on_holder(600, None, 100).unwrap();
        assert_eq!(back.link, LinkState::Up);
        let gw = l
            .on_holder(601, Some(GatewayState::Reconnecting), 100)
            .unwrap();
        assert_eq!(gw.gateway, Some(GatewayState::Reconnecting));
    }

    #[test]
    fn guild_availability_is_part_of_status() {
        let mut l = LinkTracker::default();
        l.on_holder(10, Some(GatewayState::Ready), 100);
        assert_eq!(l.status(10, 100).guild, None, "unknown before GUILD_CREATE");
        let s = l.on_guild(11, GuildAvailability::Available, 100).unwrap();
        assert_eq!(
            (s.link, s.guild),
            (LinkState::Up, Some(GuildAvailability::Available))
        );
        assert_eq!(l.on_guild(12, GuildAvailability::Available, 100), None);
        let s = l.on_guild(13, GuildAvailability::Unavailable, 100).unwrap();
        assert_eq!(s.guild, Some(GuildAvailability::Unavailable));
        // A later link change carries the guild along.
        let down = l.on_tick(500, 100).unwrap();
        assert_eq!(
            (down.link, down.guild),
            (LinkState::Down, Some(GuildAvailability::Unavailable))
        );
        // What was saved before this field existed still loads.
        let old: LinkTracker =
            serde_json::from_str(r#"{"last_seen":5,"gateway":"ready","announced":"up"}"#).unwrap();
        assert_eq!(old.guild, None);
    }
}
