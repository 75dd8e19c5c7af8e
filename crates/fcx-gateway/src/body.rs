//! Reads request bodies (plain or chunked) up to a limit, answering EntityTooLarge past it.

use axum::body::Body;
use bytes::Bytes;
use fcx_protocol::FcError;
use http_body_util::{BodyExt, Limited};

/// The whole body, or `EntityTooLarge` naming `limit` when it is longer.
pub async fn read_limited(body: Body, limit: usize) -> Result<Bytes, FcError> {
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            Err(FcError::entity_too_large(limit))
        }
        Err(e) => Err(FcError::invalid_argument(format!(
            "cannot read the request body: {e}"
        ))),
    }
}

/// Fuzzing the body limit with proptest: bodies of arbitrary chunk sizes (empty chunks
/// included) against arbitrary limits read whole exactly when they fit, and answer
/// `EntityTooLarge` naming the limit otherwise. Budget: `FCX_FUZZ_CASES`, `FCX_FUZZ_SEED`.
#[cfg(test)]
mod fuzz {
    use std::collections::VecDeque;
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use proptest::prelude::*;

    use super::*;

    struct Chunks(VecDeque<Bytes>);

    impl http_body::Body for Chunks {
        type Data = Bytes;
        type Error = std::convert::Infallible;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
            Poll::Ready(self.0.pop_front().map(|b| Ok(http_body::Frame::data(b))))
        }
    }

    #[test]
    fn bodies_are_read_whole_exactly_when_they_fit_the_limit() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let input = (
            proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 0..12),
            0usize..2000,
        );
        fcx_fuzz::run("body limits", 512, input, |(chunks, limit)| {
            let whole: Vec<u8> = chunks.concat();
            let body = Body::new(Chunks(chunks.into_iter().map(Bytes::from).collect()));
            let got = rt.block_on(read_limited(body, limit));
            if whole.len() <= limit {
                prop_assert_eq!(got.ok().map(|b| b.to_vec()), Some(whole));
            } else {
                let e = got.unwrap_err();
                prop_assert_eq!(e.code, fcx_protocol::ErrorCode::EntityTooLarge);
                prop_assert!(e.message.contains(&limit.to_string()), "{}", e.message);
            }
            Ok(())
        });
    }
}
