//! Swarm construction per platform: the only place besides `platform.rs` that branches on the
//! target.
//!
//! # Overview
//! Natively: TCP and WebSocket (with DNS), WebRTC-direct, plus libp2p's in-process memory
//! transport (`/memory/N` addresses) for many-node tests. In the browser: `websocket-websys`
//! and WebRTC-direct (dial only), plus the memory transport for the page's warm-up. Both add
//! the circuit relay v2 client transport (`…/p2p-circuit` addresses).
//!
//! # Usage
//! `Node::start` calls [`build_swarm`]`(keypair, webrtc_certificate, behaviour)` with the
//! closure [`super::behaviour::build`] returned; nothing else builds a swarm.

use std::time::Duration;

use libp2p::{identity::Keypair, relay, Swarm};

use super::behaviour::Behaviour;

/// Connections with no protocol activity are kept this long (gossipsub keeps topic peers alive).
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// Why the swarm could not be built.
pub type BuildError = String;

#[cfg(not(target_arch = "wasm32"))]
pub async fn build_swarm(
    keypair: Keypair,
    webrtc_certificate: Option<&str>,
    behaviour: impl FnOnce(relay::client::Behaviour) -> Behaviour,
) -> Result<Swarm<Behaviour>, BuildError> {
    use libp2p::{
        core::{muxing::StreamMuxerBox, transport::MemoryTransport, upgrade::Version},
        noise, tcp, yamux, Transport as _,
    };
    use libp2p_webrtc::tokio::Certificate;
    // WebRTC-direct (`/udp/N/webrtc-direct/certhash/…`): the certhash is the certificate's, so
    // a relay keeps its certificate (PEM) to stay reachable at the same address.
    let pem = match webrtc_certificate {
        Some(pem) => pem.to_owned(),
        None => new_webrtc_certificate()?,
    };
    let certificate =
        Certificate::from_pem(&pem).map_err(|e| format!("WebRTC certificate: {e}"))?;
    let swarm = libp2p::SwarmBuilder::with_existing_identity(keypair)
        .with_tokio()
        .with_tcp(
            tcp::Config::default().nodelay(true),
            noise::Config::new,
            yamux::Config::default,
        )
        .map_err(|e| e.to_string())?
        .with_other_transport(|key| {
            let noise = noise::Config::new(key)
                .map_err(|e| Box::new(e) as Box<dyn std::error::Error + Send + Sync>)?;
            Ok(MemoryTransport::default()
                .upgrade(Version::V1Lazy)
                .authenticate(noise)
                .multiplex(yamux::Config::default())
                .boxed())
        })
        .map_err(|e| e.to_string())?
        .with_other_transport(|key| {
            libp2p_webrtc::tokio::Transport::new(key.clone(), certificate).map(
                |(peer, connection), _| {
                    (
                        peer,
                        StreamMuxerBox::new(webrtc_fix::DeferOutbound::new(connection)),
                    )
                },
            )
        })
        .map_err(|e| e.to_string())?
        .with_other_transport(|key| {
            // WebSocket (mostly browsers): what one turn of the connection writes goes out as
            // one frame (`coalesce`), not a frame per message.
            let noise = noise::Config::new(key)
                .map_err(|e| Box::new(e) as Box<dyn std::error::Error + Send + Sync>)?;
            let tcp = tcp::tokio::Transport::new(tcp::Config::default().nodelay(true));
            let dns = libp2p::dns::tokio::Transport::system(tcp)
                .map_err(|e| Box::new(e) as Box<dyn std::error::Error + Send + Sync>)?;
            Ok(libp2p::websocket::Config::new(dns)
                .map(|stream, _| coalesce::Coalesce::new(stream))
                .upgrade(Version::V1Lazy)
                .authenticate(noise)
                .multiplex(yamux::Config::default())
                .boxed())
        })
        .map_err(|e| e.to_string())?
        .with_dns()
        .map_err(|e| e.to_string())?
        .with_relay_client(noise::Config::new, yamux::Config::default)
        .map_err(|e| e.to_string())?
        .with_behaviour(|_, relay_client| behaviour(relay_client))
        .map_err(|e| e.to_string())?
        .with_swarm_config(|c| c.with_idle_connection_timeout(IDLE_TIMEOUT))
        .build();
    Ok(swarm)
}

/// A fresh WebRTC-direct certificate as PEM (for [`crate::net::NodeConfig::with_webrtc_certificate`]).
#[cfg(not(target_arch = "wasm32"))]
pub fn new_webrtc_certificate() -> Result<String, BuildError> {
    libp2p_webrtc::tokio::Certificate::generate(&mut rand_webrtc::rng())
        .map(|c| c.serialize_pem())
        .map_err(|e| format!("WebRTC certificate: {e}"))
}

#[cfg(target_arch = "wasm32")]
pub async fn build_swarm(
    keypair: Keypair,
    _webrtc_certificate: Option<&str>,
    behaviour: impl FnOnce(relay::client::Behaviour) -> Behaviour,
) -> Result<Swarm<Behaviour>, BuildError> {
    use libp2p::{
        core::{muxing::StreamMuxerBox, transport::MemoryTransport, upgrade::Version},
        noise, websocket_websys, yamux, Transport as _,
    };
    let (relayed, relay_client) = relay::client::new(keypair.public().to_peer_id());
    let swarm = libp2p::SwarmBuilder::with_existing_identity(keypair)
        .with_wasm_bindgen()
        .with_other_transport(|key| {
            // WebSocket, circuits through a relay, and the in-page memory transport (the
            // warm-up, `browser::warm_up`) all carry Noise and yamux over one erased stream
            // type: their handshake and framing code is compiled once, not once per
            // transport, so the warm-up compiles what a relay connection runs.
            // The relay client comes first: websocket-websys would also take a circuit
            // address (`/ws/p2p/RELAY/p2p-circuit/…`) and dial the relay itself.
            let streams = relayed
                .map(|connection, _| erased(connection))
                .or_transport(
                    websocket_websys::Transport::default()
                        .map(|connection, _| erased(browser_ws::FlushOnSend(connection))),
                )
                .map(|either, _| either.into_inner())
                .or_transport(MemoryTransport::default().map(|channel, _| erased(channel)))
                .map(|either, _| either.into_inner());
            let noise = noise::Config::new(key)
                .map_err(|e| Box::new(e) as Box<dyn std::error::Error + Send + Sync>)?;
            Ok(streams
                .upgrade(Version::V1Lazy)
                .authenticate(noise)
                .multiplex(yamux::Config::default())
                .boxed())
        })
        .map_err(|e| e.to_string())?
        // WebRTC-direct to relays (`/udp/N/webrtc-direct/certhash/…`); opt-in, see DESIGN.md.
        .with_other_transport(|key| {
            libp2p::webrtc_websys::Transport::new(libp2p::webrtc_websys::Config::new(key))
                .map(|(peer, connection), _| (peer, StreamMuxerBox::new(connection)))
        })
        .map_err(|e| e.to_string())?
        .with_behaviour(|_| behaviour(relay_client))
        .map_err(|e| e.to_string())?
        .with_swarm_config(|c| c.with_idle_connection_timeout(IDLE_TIMEOUT))
        .build();
    Ok(swarm)
}

/// A byte stream of any browser transport, before Noise.
#[cfg(target_arch = "wasm32")]
trait ByteStream: futures::AsyncRead + futures::AsyncWrite + Send + Unpin {}
#[cfg(target_arch = "wasm32")]
impl<S: futures::AsyncRead + futures::AsyncWrite + Send + Unpin> ByteStream for S {}

#[cfg(target_arch = "wasm32")]
fn erased(stream: impl ByteStream + 'static) -> Box<dyn ByteStream> {
    Box::new(stream)
}

#[cfg(target_arch = "wasm32")]
mod browser_ws {
    //! `websocket-websys` answers `poll_flush` with `Pending` while the browser's `bufferedAmount`
    //! is non-zero and wakes the task from a 100 ms interval. Every flush right after a send
    //! (each Noise handshake message, each multistream-select line, yamux pings) therefore
    //! stalls for up to 100 ms: that was ≈ 190 ms of our first connection. Once
    //! `WebSocket.send` has accepted the bytes the browser delivers them in order or closes the
    //! socket, so there is nothing more to wait for; back-pressure stays in `poll_write` (1 MiB
    //! cap).

    use std::{
        io,
        pin::Pin,
        task::{Context, Poll},
    };

    use futures::{AsyncRead, AsyncWrite};

    pub(super) struct FlushOnSend<C>(pub(super) C);

    impl<C: AsyncRead + Unpin> AsyncRead for FlushOnSend<C> {
        fn poll_read(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut [u8],
        ) -> Poll<io::Result<usize>> {
            Pin::new(&mut self.0).poll_read(cx, buf)
        }
    }

    impl<C: AsyncWrite + Unpin> AsyncWrite for FlushOnSend<C> {
        fn poll_write(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            Pin::new(&mut self.0).poll_write(cx, buf)
        }

        fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }

        fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Pin::new(&mut self.0).poll_close(cx)
        }
    }
}

#[cfg(not(target_arch = "wasm32"))]
mod coalesce {
    //! Fewer, larger WebSocket frames. A relay forwards a burst as one small write per message,
    //! and yamux flushes after each, so every message became a WebSocket frame: in a tab, a
    //! browser event, a copy and a call into wasm each (`ws_frames_per_msg` of
    //! `scripts/profile-browser.sh` was 1.00). Here a flush right after another waits until
    //! `DELAY` has passed since it, for more writes, unless `THRESHOLD` bytes are waiting; the
    //! frame then carries them all. A write after a quiet spell goes out at once.

    use std::{
        io,
        pin::Pin,
        task::{Context, Poll},
        time::Duration,
    };

    use futures::{ready, AsyncRead, AsyncWrite, FutureExt as _};

    /// The least time between two frames while writes keep coming.
    const DELAY: Duration = Duration::from_micros(250);
    /// Bytes that go out at once, without waiting.
    const THRESHOLD: usize = 32 * 1024;

    pub(super) struct Coalesce<S> {
        inner: S,
        delay: Duration,
        buffer: Vec<u8>,
        /// When the last frame went out.
        sent: crate::platform::Instant,
        /// Armed by the first deferred flush; its firing wakes the connection to flush.
        due: Option<futures_timer::Delay>,
    }

    impl<S> Coalesce<S> {
        #[cfg(test)]
        pub(super) fn inner_ref(&self) -> &S {
            &self.inner
        }

        pub(super) fn new(inner: S) -> Self {
            Self::with_delay(inner, DELAY)
        }

        pub(super) fn with_delay(inner: S, delay: Duration) -> Self {
            Self {
                inner,
                delay,
                buffer: Vec::new(),
                // Quiet so far: the first write goes out at once.
                sent: {
                    let now = crate::platform::now();
                    now.checked_sub(delay).unwrap_or(now)
                },
                due: None,
            }
        }
    }

    impl<S: AsyncWrite + Unpin> Coalesce<S> {
        /// Writes the buffer to the inner stream (one frame) and flushes it.
        fn poll_send(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            while !self.buffer.is_empty() {
                let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &self.buffer))?;
                if n == 0 {
                    return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
                }
                self.buffer.drain(..n);
            }
            self.due = None;
            self.sent = crate::platform::now();
            Pin::new(&mut self.inner).poll_flush(cx)
        }
    }

    impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for Coalesce<S> {
        fn poll_read(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut [u8],
        ) -> Poll<io::Result<usize>> {
            // A reader may be waiting for the answer to what still waits here (a handshake
            // writes, flushes, then only reads): once due, it goes out from here too.
            let this = &mut *self;
            if let Some(due) = &mut this.due {
                if due.poll_unpin(cx).is_ready() {
                    if let Poll::Ready(Err(e)) = this.poll_send(cx) {
                        return Poll::Ready(Err(e));
                    }
                }
            }
            Pin::new(&mut this.inner).poll_read(cx, buf)
        }
    }

    impl<S: AsyncWrite + Unpin> AsyncWrite for Coalesce<S> {
        fn poll_write(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            if self.buffer.len() >= THRESHOLD {
                ready!(self.poll_send(cx))?;
            }
            self.buffer.extend_from_slice(buf);
            Poll::Ready(Ok(buf.len()))
        }

        fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            let this = &mut *self;
            if this.buffer.is_empty() {
                return Pin::new(&mut this.inner).poll_flush(cx);
            }
            if this.buffer.len() < THRESHOLD {
                // Armed once per waiting buffer; the clock is read only to arm it.
                if this.due.is_none() {
                    let wait = this.delay.saturating_sub(this.sent.elapsed());
                    if !wait.is_zero() {
                        this.due = Some(futures_timer::Delay::new(wait));
                    }
                }
                if let Some(due) = &mut this.due {
                    if due.poll_unpin(cx).is_pending() {
                        // Not yet: the timer wakes the connection, whose next flush sends it.
                        return Poll::Ready(Ok(()));
                    }
                }
            }
            this.poll_send(cx)
        }

        fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            ready!(self.poll_send(cx))?;
            Pin::new(&mut self.inner).poll_close(cx)
        }
    }
}

#[cfg(not(target_arch = "wasm32"))]
mod webrtc_fix {
    //! The ≈ 10 s stall of native → browser traffic over WebRTC-direct (rust-libp2p #3690).
    //!
    //! Cause: the browser (`libp2p-webrtc-websys`) installs its `ondatachannel` listener only
    //! when its side of the Noise handshake has returned, but the native side opens data
    //! channels (gossipsub, identify, …) as soon as its own side is done. Channels announced in
    //! between fire `datachannel` events nobody listens to, so they are lost; the native
    //! stream's protocol negotiation then waits out libp2p's 10 s upgrade timeout and is
    //! retried. Fix: on WebRTC connections the native side opens no outbound stream until the
    //! browser has opened one (proof its listener is in place; ours always do at once), or
    //! until `GRACE` has passed, for peers that open none.

    use std::{
        pin::Pin,
        task::{Context, Poll, Waker},
        time::Duration,
    };

    use futures::FutureExt as _;
    use libp2p::core::muxing::{StreamMuxer, StreamMuxerEvent, StreamMuxerExt as _};

    /// How long outbound streams wait for the browser's first one at most.
    const GRACE: Duration = Duration::from_secs(1);

    pub(super) struct DeferOutbound<M> {
        inner: M,
        open: bool,
        grace: futures_timer::Delay,
        waiting: Option<Waker>,
    }

    impl<M> DeferOutbound<M> {
        pub(super) fn new(inner: M) -> Self {
            Self {
                inner,
                open: false,
                grace: futures_timer::Delay::new(GRACE),
                waiting: None,
            }
        }

        fn open_up(&mut self) {
            self.open = true;
            if let Some(waker) = self.waiting.take() {
                waker.wake();
            }
        }
    }

    impl<M: StreamMuxer + Unpin> StreamMuxer for DeferOutbound<M> {
        type Substream = M::Substream;
        type Error = M::Error;

        fn poll_inbound(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<Result<Self::Substream, Self::Error>> {
            let polled = self.inner.poll_inbound_unpin(cx);
            if matches!(polled, Poll::Ready(Ok(_))) && !self.open {
                self.open_up();
            }
            polled
        }

        fn poll_outbound(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<Result<Self::Substream, Self::Error>> {
            if !self.open {
                if self.grace.poll_unpin(cx).is_ready() {
                    self.open_up();
                } else {
                    self.waiting = Some(cx.waker().clone());
                    return Poll::Pending;
                }
            }
            self.inner.poll_outbound_unpin(cx)
        }

        fn poll_close(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<Result<(), Self::Error>> {
            self.inner.poll_close_unpin(cx)
        }

        fn poll(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<Result<StreamMuxerEvent, Self::Error>> {
            self.inner.poll_unpin(cx)
        }
    }
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use std::{
        io,
        pin::Pin,
        task::{Context, Poll},
    };

    use futures::{io::Cursor, task::noop_waker_ref};
    use libp2p::core::muxing::{StreamMuxer, StreamMuxerEvent, StreamMuxerExt as _};

    use super::webrtc_fix::DeferOutbound;

    /// A muxer whose streams are always ready, and an inbound one only when `inbound` is set.
    struct Ready {
        inbound: bool,
    }

    impl StreamMuxer for Ready {
        type Substream = Cursor<Vec<u8>>;
        type Error = io::Error;

        fn poll_inbound(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Result<Self::Substream, Self::Error>> {
            if std::mem::take(&mut self.inbound) {
                Poll::Ready(Ok(Cursor::new(Vec::new())))
            } else {
                Poll::Pending
            }
        }

        fn poll_outbound(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Result<Self::Substream, Self::Error>> {
            Poll::Ready(Ok(Cursor::new(Vec::new())))
        }

        fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), io::Error>> {
            Poll::Ready(Ok(()))
        }

        fn poll(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Result<StreamMuxerEvent, io::Error>> {
            Poll::Pending
        }
    }

    #[test]
    fn outbound_streams_wait_for_the_first_inbound_one() {
        let mut cx = Context::from_waker(noop_waker_ref());
        let mut muxer = DeferOutbound::new(Ready { inbound: false });
        assert!(muxer.poll_outbound_unpin(&mut cx).is_pending());
        assert!(muxer.poll_inbound_unpin(&mut cx).is_pending());
        assert!(muxer.poll_outbound_unpin(&mut cx).is_pending());
        // The browser opens a stream: its listener is in place, ours may follow.
        muxer = DeferOutbound::new(Ready { inbound: true });
        assert!(muxer.poll_inbound_unpin(&mut cx).is_ready());
        assert!(muxer.poll_outbound_unpin(&mut cx).is_ready());
    }

    #[test]
    fn a_peer_that_opens_nothing_gets_outbound_streams_after_the_grace() {
        let mut muxer = DeferOutbound::new(Ready { inbound: false });
        let opened = futures::executor::block_on(futures::future::poll_fn(|cx| {
            muxer.poll_outbound_unpin(cx).map(|r| r.is_ok())
        }));
        assert!(opened);
    }
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod coalesce_tests {
    use std::{
        io,
        pin::Pin,
        task::{Context, Poll},
        time::Duration,
    };

    use futures::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};

    use super::coalesce::Coalesce;

    /// An inner stream that records each write it is given (each would be one WebSocket
    /// frame) and has nothing to read.
    #[derive(Default)]
    struct Frames(Vec<Vec<u8>>);

    impl AsyncWrite for Frames {
        fn poll_write(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            self.0.push(buf.to_vec());
            Poll::Ready(Ok(buf.len()))
        }
        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    impl AsyncRead for Frames {
        fn poll_read(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            _: &mut [u8],
        ) -> Poll<io::Result<usize>> {
            Poll::Pending
        }
    }

    /// Long enough that consecutive writes in a test are surely within it.
    const LONG: Duration = Duration::from_secs(2);

    fn frames(stream: &Coalesce<Frames>) -> Vec<Vec<u8>> {
        stream.inner_ref().0.clone()
    }

    #[tokio::test]
    async fn a_write_after_quiet_goes_at_once_and_a_burst_goes_as_one_frame() {
        let mut stream = Coalesce::with_delay(Frames::default(), LONG);
        stream.write_all(b"lone").await.unwrap();
        stream.flush().await.unwrap();
        assert_eq!(frames(&stream), vec![b"lone".to_vec()]);
        // Right after it: writes and flushes wait for company, then go out together.
        for word in [b"a", b"b", b"c"] {
            stream.write_all(word).await.unwrap();
            stream.flush().await.unwrap();
        }
        assert_eq!(frames(&stream).len(), 1);
        tokio::time::sleep(LONG).await;
        stream.flush().await.unwrap();
        assert_eq!(frames(&stream), vec![b"lone".to_vec(), b"abc".to_vec()]);
        // Closing sends what waits.
        stream.write_all(b"last").await.unwrap();
        stream.close().await.unwrap();
        assert_eq!(frames(&stream).last().unwrap(), b"last");
    }

    #[tokio::test]
    async fn a_reader_waiting_for_an_answer_gets_its_request_sent() {
        // A handshake: write, flush, then only read. The deferred request must still go out.
        let mut stream = Coalesce::with_delay(Frames::default(), LONG);
        stream.write_all(b"first").await.unwrap();
        stream.flush().await.unwrap();
        stream.write_all(b"request").await.unwrap();
        stream.flush().await.unwrap();
        let mut answer = [0u8; 8];
        let read = tokio::time::timeout(LONG * 2, stream.read(&mut answer)).await;
        assert!(read.is_err(), "nothing to read in this test");
        assert_eq!(
            frames(&stream),
            vec![b"first".to_vec(), b"request".to_vec()]
        );
    }

    #[tokio::test]
    async fn many_bytes_go_out_without_waiting() {
        let mut stream = Coalesce::with_delay(Frames::default(), LONG);
        stream.write_all(b"x").await.unwrap();
        stream.flush().await.unwrap();
        let big = vec![7u8; 40 * 1024];
        stream.write_all(&big).await.unwrap();
        stream.flush().await.unwrap();
        assert_eq!(frames(&stream).len(), 2);
        assert_eq!(frames(&stream)[1].len(), big.len());
    }
}
