//! Reads request bodies (plain or chunked) up to a limit, answering EntityTooLarge past it: a
//! declared Content-Length over the limit is refused before anything is read, and a chunked
//! body is read frame by frame into one buffer and cut at the limit.

use axum::body::Body;
use bytes::{Bytes, BytesMut};
use fcx_protocol::FcError;
use http_body_util::BodyExt;

/// The whole body, or `EntityTooLarge` naming `limit` when it is (or declares to be) longer.
pub async fn read_limited(mut body: Body, limit: usize) -> Result<Bytes, FcError> {
    use hyper::body::Body as _;
    // The Content-Length, when the client sent one.
    let declared = body.size_hint().exact();
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(FcError::entity_too_large(limit));
    }
    let mut buf = BytesMut::with_capacity(declared.unwrap_or(0) as usize);
    while let Some(frame) = body.frame().await {
        let frame = frame
            .map_err(|e| FcError::invalid_argument(format!("cannot read the request body: {e}")))?;
        if let Ok(data) = frame.into_data() {
            if buf.len() + data.len() > limit {
                return Err(FcError::entity_too_large(limit));
            }
            buf.extend_from_slice(&data);
        }
    }
    Ok(buf.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn bodies_over_the_limit_are_refused_and_others_read_whole() {
        let ok = read_limited(Body::from(vec![b'a'; 10]), 10).await.unwrap();
        assert_eq!(ok.len(), 10);
        let over = read_limited(Body::from(vec![b'a'; 11]), 10)
            .await
            .unwrap_err();
        assert_eq!(over, FcError::entity_too_large(10));
        // A stream without a declared length is cut at the limit as it flows.
        let chunks = futures_stream(vec![vec![b'a'; 6], vec![b'a'; 6]]);
        let cut = read_limited(chunks, 10).await.unwrap_err();
        assert_eq!(cut, FcError::entity_too_large(10));
    }

    /// Chunks with no declared length, as a chunked upload arrives.
    fn futures_stream(parts: Vec<Vec<u8>>) -> Body {
        Body::new(Chunks(parts.into_iter().map(Bytes::from).collect()))
    }

    struct Chunks(std::collections::VecDeque<Bytes>);

    impl hyper::body::Body for Chunks {
        type Data = Bytes;
        type Error = std::convert::Infallible;

        fn poll_frame(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, Self::Error>>> {
            std::task::Poll::Ready(self.0.pop_front().map(|b| Ok(hyper::body::Frame::data(b))))
        }
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
