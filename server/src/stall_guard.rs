//! A request body that fails when its client stops sending.
//!
//! hyper bounds how long request headers may take, not the body: a client can announce a
//! large `Content-Length` and then send a byte a minute, holding its connection (and a slot
//! of the connection limit) for as long as it likes. Wrapped in a [`StallGuard`], a body that
//! produces nothing for the idle timeout ends with an error; the handler's extractor refuses
//! the request and hyper closes the connection, whose body was not read to the end.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::body::{Body, Frame, SizeHint};
use tokio::time::{Instant, Sleep};

#[derive(Debug, thiserror::Error)]
#[error("the request body stalled: nothing arrived for {0:?}")]
pub struct BodyStalled(Duration);

pub struct StallGuard<B> {
    body: B,
    idle: Duration,
    /// Started on the first poll that finds nothing, reset by every chunk.
    deadline: Option<Pin<Box<Sleep>>>,
}

impl<B> StallGuard<B> {
    pub fn new(body: B, idle: Duration) -> Self {
        Self { body, idle, deadline: None }
    }
}

impl<B> Body for StallGuard<B>
where
    B: Body + Unpin,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Data = B::Data;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.body).poll_frame(cx) {
            Poll::Ready(frame) => {
                this.deadline = None;
                Poll::Ready(frame.map(|frame| frame.map_err(Into::into)))
            }
            Poll::Pending => {
                let idle = this.idle;
                let deadline = this
                    .deadline
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(Instant::now() + idle)));
                match deadline.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Some(Err(Box::new(BodyStalled(idle))))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A body that never produces anything.
    struct Silent;

    impl Body for Silent {
        type Data = bytes::Bytes;
        type Error = std::convert::Infallible;

        fn poll_frame(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
            Poll::Pending
        }
    }

    #[tokio::test]
    async fn a_silent_body_fails_after_the_idle_timeout() {
        let idle = Duration::from_millis(50);
        let mut guarded = StallGuard::new(Silent, idle);
        let started = Instant::now();
        let frame = std::future::poll_fn(|cx| Pin::new(&mut guarded).poll_frame(cx)).await;
        let error = frame.expect("an item").expect_err("an error");
        assert!(error.to_string().contains("stalled"), "{error}");
        assert!(started.elapsed() >= idle, "not before the timeout");
    }

    #[tokio::test]
    async fn a_body_that_has_data_passes_through() {
        let body = axum::body::Body::from("hello");
        let mut guarded = StallGuard::new(body, Duration::from_secs(5));
        let frame = std::future::poll_fn(|cx| Pin::new(&mut guarded).poll_frame(cx)).await;
        let data = frame.expect("a frame").expect("data").into_data().expect("a data frame");
        assert_eq!(&data[..], b"hello");
    }
}
