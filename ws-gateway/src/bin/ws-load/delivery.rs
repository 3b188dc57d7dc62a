//! Whether a room member got every tally of a game: each version after the one its join reply
//! carried, up to the game's last, exactly once.

use std::ops::AddAssign;

/// What a member (or, summed, every member) received of the tallies due to it.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Delivery {
    /// Versions due: after the join's, up to the last.
    pub due: u64,
    /// Due versions never received.
    pub missed: u64,
    /// Receptions of a due version received before.
    pub duplicated: u64,
    /// Versions received that were not due: at or before the join's, or after the last.
    pub unexpected: u64,
}

impl Delivery {
    /// The delivery to a member that joined at version `joined_at` and received the tally
    /// versions `received`, of a game whose last version is `last`.
    pub fn of(joined_at: u64, last: u64, received: &[u64]) -> Delivery {
        let due = last.saturating_sub(joined_at);
        let mut got = vec![false; due as usize];
        let mut delivery = Delivery {
            due,
            ..Delivery::default()
        };
        for &version in received {
            if version <= joined_at || version > last {
                delivery.unexpected += 1;
                continue;
            }
            let seen = &mut got[(version - joined_at - 1) as usize];
            if *seen {
                delivery.duplicated += 1;
            }
            *seen = true;
        }
        delivery.missed = got.iter().filter(|&&seen| !seen).count() as u64;
        delivery
    }
}

impl AddAssign for Delivery {
    fn add_assign(&mut self, other: Delivery) {
        self.due += other.due;
        self.missed += other.missed;
        self.duplicated += other.duplicated;
        self.unexpected += other.unexpected;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_version_after_the_join_once_is_a_full_delivery() {
        assert_eq!(
            Delivery::of(2, 5, &[3, 4, 5]),
            Delivery {
                due: 3,
                ..Delivery::default()
            }
        );
    }

    #[test]
    fn a_version_never_received_is_missed_and_one_received_twice_duplicated() {
        let delivery = Delivery::of(0, 4, &[1, 3, 3, 4]);
        assert_eq!((delivery.missed, delivery.duplicated), (1, 1));
    }

    #[test]
    fn a_member_that_received_nothing_missed_everything_due() {
        assert_eq!(Delivery::of(0, 20, &[]).missed, 20);
    }

    #[test]
    fn versions_outside_join_to_last_are_unexpected_not_due() {
        let delivery = Delivery::of(3, 5, &[3, 4, 5, 6]);
        assert_eq!(
            delivery,
            Delivery {
                due: 2,
                unexpected: 2,
                ..Delivery::default()
            }
        );
    }

    #[test]
    fn nothing_is_due_in_a_game_nobody_moved_in() {
        assert_eq!(Delivery::of(0, 0, &[]), Delivery::default());
    }
}
