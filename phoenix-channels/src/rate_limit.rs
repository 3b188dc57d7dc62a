//! The per-connection message rate limit: a token bucket over the client's messages.
//! Refused messages are strikes; a full second's worth of strikes without the bucket
//! refilling is abuse, and the socket closes the connection (1008).

use tokio::time::Instant;

/// A token bucket holding at most a second's worth of messages, refilled continuously.
pub(crate) struct RateLimiter {
    rate: f64,
    tokens: f64,
    last: Instant,
    strikes: u32,
}

/// The verdict on one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Rate {
    Allowed,
    /// Over the rate: answered `rate_limited`, not handled.
    Refused,
    /// Refused `per_second` times without the bucket ever filling up again.
    Abusive,
}

impl RateLimiter {
    /// `per_second` messages a second, in bursts of as many (0 counts as 1); full at first.
    pub(crate) fn new(per_second: u32) -> Self {
        let rate = f64::from(per_second.max(1));
        RateLimiter {
            rate,
            tokens: rate,
            last: Instant::now(),
            strikes: 0,
        }
    }

    /// Takes a token for a message that arrived at `now`.
    pub(crate) fn check(&mut self, now: Instant) -> Rate {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.rate);
        // A bucket that filled up again forgives: the client slowed down.
        if self.tokens >= self.rate {
            self.strikes = 0;
        }
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Rate::Allowed
        } else {
            self.strikes += 1;
            if f64::from(self.strikes) >= self.rate {
                Rate::Abusive
            } else {
                Rate::Refused
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::time::advance;

    use super::*;

    /// `n` messages arriving now.
    fn burst(limiter: &mut RateLimiter, n: usize) -> Vec<Rate> {
        (0..n).map(|_| limiter.check(Instant::now())).collect()
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_of_a_seconds_worth_is_allowed_and_the_next_message_refused() {
        let mut limiter = RateLimiter::new(5);
        assert_eq!(burst(&mut limiter, 5), [Rate::Allowed; 5]);
        assert_eq!(limiter.check(Instant::now()), Rate::Refused);
    }

    #[tokio::test(start_paused = true)]
    async fn tokens_come_back_at_the_rate() {
        let mut limiter = RateLimiter::new(5);
        burst(&mut limiter, 5);
        advance(Duration::from_millis(199)).await;
        assert_eq!(limiter.check(Instant::now()), Rate::Refused);
        advance(Duration::from_millis(1)).await;
        assert_eq!(limiter.check(Instant::now()), Rate::Allowed);
        assert_eq!(limiter.check(Instant::now()), Rate::Refused);
    }

    #[tokio::test(start_paused = true)]
    async fn a_steady_client_at_the_rate_is_never_refused() {
        let mut limiter = RateLimiter::new(5);
        for _ in 0..100 {
            assert_eq!(limiter.check(Instant::now()), Rate::Allowed);
            advance(Duration::from_millis(200)).await;
        }
    }

    /// A limiter of 5 a second that spent its burst and then refused 4 messages: one refusal
    /// short of a second's worth.
    fn four_refusals_in() -> RateLimiter {
        let mut limiter = RateLimiter::new(5);
        burst(&mut limiter, 5);
        assert_eq!(burst(&mut limiter, 4), [Rate::Refused; 4]);
        limiter
    }

    #[tokio::test(start_paused = true)]
    async fn a_seconds_worth_of_refusals_is_abuse() {
        let mut limiter = four_refusals_in();
        assert_eq!(limiter.check(Instant::now()), Rate::Abusive);
    }

    #[tokio::test(start_paused = true)]
    async fn strikes_are_forgiven_only_once_the_bucket_is_full_again() {
        let mut limiter = four_refusals_in();
        // A token back, not the whole bucket: the strikes stand.
        advance(Duration::from_millis(200)).await;
        assert_eq!(limiter.check(Instant::now()), Rate::Allowed);
        assert_eq!(limiter.check(Instant::now()), Rate::Abusive);

        let mut limiter = four_refusals_in();
        // A second of quiet fills it: a fresh start.
        advance(Duration::from_secs(1)).await;
        assert_eq!(burst(&mut limiter, 5), [Rate::Allowed; 5]);
        assert_eq!(burst(&mut limiter, 4), [Rate::Refused; 4]);
        assert_eq!(limiter.check(Instant::now()), Rate::Abusive);
    }

    #[tokio::test(start_paused = true)]
    async fn a_rate_of_zero_allows_one_a_second() {
        let mut limiter = RateLimiter::new(0);
        assert_eq!(limiter.check(Instant::now()), Rate::Allowed);
        assert_eq!(limiter.check(Instant::now()), Rate::Abusive);
    }
}
