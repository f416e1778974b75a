//! Placeholder: built in the discord-sim issue.
