//! Replay-window arithmetic. The window holds cursors `floor..=head` (empty when
//! `floor == head + 1`); cursors below `floor` were trimmed by size or age.

use contracts::{GapEvent, GapReason, Version};

/// Where a connecting client starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Resume {
    /// No cursor, or nothing after it: live from `head`.
    Live,
    /// Replay every stored event with a cursor above `after`, then live.
    Replay { after: u64 },
    /// Part of what the client asked for is gone: send `gap` (SSE id `gap_id`, the last lost
    /// cursor, so the browser's `Last-Event-ID` moves past the hole), then replay above `after`.
    GapThenReplay {
        gap: GapEvent,
        gap_id: u64,
        after: u64,
    },
}

/// Decides how a client holding `requested` resumes against the window `floor..=head`.
pub fn resume(requested: Option<u64>, floor: u64, head: u64) -> Resume {
    let Some(req) = requested else {
        return Resume::Live;
    };
    // At or past the head (past: the edge's storage was reset): nothing to replay.
    if req >= head {
        return Resume::Live;
    }
    if req + 1 >= floor {
        return Resume::Replay { after: req };
    }
    let last_lost = floor - 1;
    Resume::GapThenReplay {
        gap: GapEvent {
            version: Version,
            reason: GapReason::ReplayWindow,
            after: req,
            before: Some(floor),
            missing: Some(last_lost - req),
        },
        gap_id: last_lost,
        after: last_lost,
    }
}

/// Cursors below this are beyond the size limit.
pub fn count_floor(head: u64, max_events: u64) -> u64 {
    (head + 1).saturating_sub(max_events)
}

/// Events stored before this time (Unix ms) are beyond the age limit.
pub fn age_cutoff(now_ms: u64, max_age_ms: u64) -> u64 {
    now_ms.saturating_sub(max_age_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resume_cases() {
        // Window 31..=50.
        assert_eq!(resume(None, 31, 50), Resume::Live);
        assert_eq!(resume(Some(50), 31, 50), Resume::Live);
        assert_eq!(resume(Some(70), 31, 50), Resume::Live);
        assert_eq!(resume(Some(30), 31, 50), Resume::Replay { after: 30 });
        assert_eq!(resume(Some(45), 31, 50), Resume::Replay { after: 45 });
        match resume(Some(5), 31, 50) {
            Resume::GapThenReplay { gap, gap_id, after } => {
                assert_eq!(
                    (gap.after, gap.before, gap.missing),
                    (5, Some(31), Some(25))
                );
                assert_eq!((gap_id, after), (30, 30));
            }
            other => panic!("{other:?}"),
        }
        // Empty window (everything aged out): the hole runs to the head.
        match resume(Some(3), 11, 10) {
            Resume::GapThenReplay { gap, gap_id, .. } => {
                assert_eq!((gap.before, gap.missing, gap_id), (Some(11), Some(7), 10));
            }
            other => panic!("{other:?}"),
        }
        // A fresh edge (head 0) and a cursor of 0.
        assert_eq!(resume(Some(0), 1, 0), Resume::Live);
    }

    #[test]
    fn trim_limits() {
        assert_eq!(count_floor(50, 20), 31);
        assert_eq!(count_floor(5, 20), 0);
        assert_eq!(age_cutoff(1_000, 300), 700);
        assert_eq!(age_cutoff(100, 300), 0);
    }
}
