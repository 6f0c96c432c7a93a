//! The measuring harness: heap and wire accounting, and one benchmark
//! node (Pointer, raw gossipsub and kad on one swarm, driven by jobs).

use super::*;

// ---------------------------------------------------------------------------
// Heap accounting

/// Live heap bytes of the whole process.
pub(crate) static LIVE_HEAP: AtomicI64 = AtomicI64::new(0);

pub(crate) struct CountingAlloc;

// SAFETY: every call is forwarded to the system allocator unchanged; the
// wrapper only adds and subtracts sizes.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            LIVE_HEAP.fetch_add(layout.size() as i64, Relaxed);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            LIVE_HEAP.fetch_add(layout.size() as i64, Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        LIVE_HEAP.fetch_sub(layout.size() as i64, Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            LIVE_HEAP.fetch_add(new_size as i64 - layout.size() as i64, Relaxed);
        }
        p
    }
}

#[global_allocator]
pub(crate) static GLOBAL: CountingAlloc = CountingAlloc;

pub(crate) fn heap() -> i64 {
    LIVE_HEAP.load(Relaxed)
}

// ---------------------------------------------------------------------------
// Wire accounting: a TCP stream wrapper below noise and yamux

#[derive(Default)]
pub(crate) struct Wire {
    pub(crate) tx: AtomicU64,
    pub(crate) rx: AtomicU64,
    pub(crate) writes: AtomicU64,
}

#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct WireSnap {
    pub(crate) tx: u64,
    pub(crate) rx: u64,
    pub(crate) writes: u64,
}

impl WireSnap {
    pub(crate) fn since(self, before: WireSnap) -> WireSnap {
        WireSnap {
            tx: self.tx - before.tx,
            rx: self.rx - before.rx,
            writes: self.writes - before.writes,
        }
    }
}

pub(crate) struct Counted<S> {
    pub(crate) inner: S,
    pub(crate) wire: Arc<Wire>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Counted<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(n)) = &r {
            this.wire.rx.fetch_add(*n as u64, Relaxed);
        }
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Counted<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = &r {
            if *n > 0 {
                this.wire.tx.fetch_add(*n as u64, Relaxed);
                this.wire.writes.fetch_add(1, Relaxed);
            }
        }
        r
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_close(cx)
    }
}

// ---------------------------------------------------------------------------
// One node

#[derive(NetworkBehaviour)]
pub(crate) struct Bench {
    pub(crate) pointer: Behaviour<BenchStore>,
    pub(crate) gossipsub: gossipsub::Behaviour<IdentityTransform, AllowAllSubscriptionFilter>,
    pub(crate) kad: kad::Behaviour<kad::store::MemoryStore>,
}

/// What a node task reports, stamped when the swarm emitted it.
#[derive(Debug)]
pub(crate) enum Obs {
    Updated {
        node: usize,
        at: Instant,
        key: String,
        tag: u64,
    },
    Raw {
        node: usize,
        at: Instant,
        id: MessageId,
    },
    KadFound {
        node: usize,
        at: Instant,
        key: Vec<u8>,
        tag: u64,
    },
    KadGetFailed {
        node: usize,
        key: Vec<u8>,
    },
    KadPut {
        at: Instant,
        key: Vec<u8>,
        ok: bool,
    },
    KadBootstrapped {
        node: usize,
    },
}

/// A writer that puts as fast as the node task lets it.
pub(crate) struct Writer {
    pub(crate) key: String,
    pub(crate) filler: String,
    pub(crate) started: Instant,
    pub(crate) until: Instant,
    pub(crate) puts: u64,
    pub(crate) errors: u64,
    pub(crate) done: Option<oneshot::Sender<(u64, u64, Duration)>>,
}

/// Per-node state the node task keeps next to its swarm.
pub(crate) struct State {
    pub(crate) idx: usize,
    pub(crate) obs: mpsc::UnboundedSender<Obs>,
    /// Forward `RecordUpdated` as observations (off for the throughput run).
    pub(crate) forward: bool,
    pub(crate) updates: u64,
    pub(crate) last_update: Option<Instant>,
    pub(crate) publish_failed: u64,
    pub(crate) fetch_failed: u64,
    pub(crate) kad_found: HashSet<QueryId>,
    pub(crate) kad_get_keys: HashMap<QueryId, Vec<u8>>,
    pub(crate) writer: Option<Writer>,
}

pub(crate) type Job = Box<dyn FnOnce(&mut Swarm<Bench>, &mut State) + Send>;

pub(crate) struct Node {
    pub(crate) peer: PeerId,
    pub(crate) addr: Multiaddr,
    pub(crate) jobs: mpsc::UnboundedSender<Job>,
    pub(crate) wire: Arc<Wire>,
    pub(crate) task: tokio::task::JoinHandle<()>,
}

impl Node {
    /// Runs `f` on the node's task and returns its result.
    pub(crate) async fn call<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Swarm<Bench>, &mut State) -> R + Send + 'static,
    ) -> R {
        let (tx, rx) = oneshot::channel();
        self.jobs
            .unbounded_send(Box::new(move |s, st| {
                let _ = tx.send(f(s, st));
            }))
            .expect("node task alive");
        rx.await.expect("node task alive")
    }

    pub(crate) fn wire(&self) -> WireSnap {
        WireSnap {
            tx: self.wire.tx.load(Relaxed),
            rx: self.wire.rx.load(Relaxed),
            writes: self.wire.writes.load(Relaxed),
        }
    }
}

pub(crate) fn gossipsub_config(republish: Duration) -> gossipsub::Config {
    let max_message_bytes = Config::default().max_message_bytes();
    let max_key_bytes = Config::default().limits().max_key_bytes;
    let mut b = gossipsub::ConfigBuilder::default();
    b.validation_mode(ValidationMode::Anonymous)
        .validate_messages()
        .message_id_fn(|m: &gossipsub::Message| MessageId::new(&Sha256::digest(&m.data)))
        .max_transmit_size(max_message_bytes + max_key_bytes + 1024)
        .heartbeat_interval(Duration::from_secs(1))
        .duplicate_cache_time(
            (republish / 4).clamp(Duration::from_millis(100), Duration::from_secs(60)),
        );
    b.build().expect("valid gossipsub config")
}

pub(crate) fn pointer_config(republish: Duration, shards: u16) -> Config {
    let mut b = Config::builder()
        .gossipsub_protocol_prefix("/pointer/meshsub")
        .republish_interval(republish)
        .topic_shards(shards);
    // For experiments only: the defaults are the library's.
    if let Some(threads) = std::env::var("POINTER_BENCH_VERIFY_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        b = b.verify_threads(threads);
    }
    if let Some(fanout) = std::env::var("POINTER_BENCH_FETCH_FANOUT")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        b = b.fetch_fanout(fanout);
    }
    b.build().expect("valid config")
}

/// Builds and starts a node; `store` pre-fills Pointer's store (a node
/// restarted on its records follows every key it holds) and `kad_records`
/// the kad store.
pub(crate) async fn start_node(
    idx: usize,
    keypair: Keypair,
    (republish, shards): (Duration, u16),
    store: BenchStore,
    kad_records: Vec<kad::Record>,
    obs: mpsc::UnboundedSender<Obs>,
) -> Node {
    let wire = Arc::new(Wire::default());
    let w = wire.clone();
    let mut swarm = libp2p::SwarmBuilder::with_existing_identity(keypair)
        .with_tokio()
        .with_other_transport(
            move |key| -> Result<_, Box<dyn std::error::Error + Send + Sync>> {
                Ok(tcp::tokio::Transport::new(tcp::Config::default())
                    .map(move |stream, _| Counted {
                        inner: stream,
                        wire: w.clone(),
                    })
                    .upgrade(upgrade::Version::V1)
                    .authenticate(noise::Config::new(key)?)
                    .multiplex(yamux::Config::default()))
            },
        )
        .expect("transport")
        .with_behaviour(|key| {
            let peer = key.public().to_peer_id();
            let mut kad_store = kad::store::MemoryStore::with_config(
                peer,
                kad::store::MemoryStoreConfig {
                    max_records: 1_000_000,
                    ..Default::default()
                },
            );
            for r in kad_records {
                kad_store.put(r).expect("kad store has room");
            }
            let mut kad_config = kad::Config::new(StreamProtocol::new("/ipfs/kad/1.0.0"));
            kad_config.set_query_timeout(Duration::from_secs(30));
            // kad learns its neighbours only when its phase starts (see
            // `Net::start_kad`), so its bootstrap dials do not change the
            // topology the other systems are measured on.
            kad_config.set_periodic_bootstrap_interval(None);
            let mut kad = kad::Behaviour::with_config(peer, kad_store, kad_config);
            kad.set_mode(Some(Mode::Server));
            Ok(Bench {
                pointer: Behaviour::new(key, store, pointer_config(republish, shards))?,
                gossipsub: gossipsub::Behaviour::new_with_subscription_filter(
                    MessageAuthenticity::Anonymous,
                    gossipsub_config(republish),
                    AllowAllSubscriptionFilter {},
                )?,
                kad,
            })
        })
        .expect("behaviour")
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(3600)))
        .build();
    swarm
        .listen_on("/ip4/127.0.0.1/tcp/0".parse().expect("addr"))
        .expect("listen");
    let addr = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let SwarmEvent::NewListenAddr { address, .. } = swarm.select_next_some().await {
                return address;
            }
        }
    })
    .await
    .expect("node listens");
    let peer = *swarm.local_peer_id();
    let (jobs, rx) = mpsc::unbounded();
    let state = State {
        idx,
        obs,
        forward: true,
        updates: 0,
        last_update: None,
        publish_failed: 0,
        fetch_failed: 0,
        kad_found: HashSet::new(),
        kad_get_keys: HashMap::new(),
        writer: None,
    };
    let task = tokio::spawn(run_node(swarm, rx, state));
    Node {
        peer,
        addr,
        jobs,
        wire,
        task,
    }
}

pub(crate) async fn run_node(
    mut swarm: Swarm<Bench>,
    mut jobs: mpsc::UnboundedReceiver<Job>,
    mut st: State,
) {
    loop {
        let writing = st.writer.is_some();
        tokio::select! {
            biased;
            job = jobs.next() => match job {
                Some(job) => job(&mut swarm, &mut st),
                None => return,
            },
            event = swarm.select_next_some() => on_event(&mut swarm, &mut st, event),
            // Only when the swarm has nothing ready: one put, then let the
            // scheduler run the connection tasks, which drain gossipsub's
            // queue to the receiver. A writer that yielded only every 64
            // puts starved them: most puts came back `PublishFailed`, and
            // the receiver's figures measured the writer's scheduling.
            _ = std::future::ready(()), if writing => {
                write_one(&mut swarm, &mut st);
                tokio::task::yield_now().await;
            }
        }
    }
}

pub(crate) fn write_one(swarm: &mut Swarm<Bench>, st: &mut State) {
    let Some(w) = st.writer.as_mut() else {
        return;
    };
    let now = Instant::now();
    if now >= w.until {
        let w = st.writer.take().expect("writer");
        if let Some(done) = w.done {
            let _ = done.send((w.puts, w.errors, now - w.started));
        }
        return;
    }
    let value = format!("{:016x}{}", w.puts, w.filler);
    match swarm.behaviour_mut().pointer.put(&w.key, &value) {
        Ok(_) => w.puts += 1,
        Err(_) => w.errors += 1,
    }
}

pub(crate) fn tag_of(value: &[u8]) -> u64 {
    std::str::from_utf8(value.get(..16).unwrap_or_default())
        .ok()
        .and_then(|s| u64::from_str_radix(s, 16).ok())
        .unwrap_or(u64::MAX)
}

pub(crate) fn on_event(swarm: &mut Swarm<Bench>, st: &mut State, event: SwarmEvent<BenchEvent>) {
    let SwarmEvent::Behaviour(event) = event else {
        return;
    };
    let now = Instant::now();
    match event {
        BenchEvent::Pointer(Event::RecordUpdated { record, .. }) => {
            st.updates += 1;
            st.last_update = Some(now);
            if st.forward {
                let _ = st.obs.unbounded_send(Obs::Updated {
                    node: st.idx,
                    at: now,
                    key: record.key().to_owned(),
                    tag: tag_of(record.value().as_bytes()),
                });
            }
        }
        BenchEvent::Pointer(Event::PublishFailed { .. }) => st.publish_failed += 1,
        BenchEvent::Pointer(Event::FetchFailed { .. }) => st.fetch_failed += 1,
        BenchEvent::Pointer(_) => {}
        BenchEvent::Gossipsub(gossipsub::Event::Message {
            propagation_source,
            message_id,
            ..
        }) => {
            swarm
                .behaviour_mut()
                .gossipsub
                .report_message_validation_result(
                    &message_id,
                    &propagation_source,
                    MessageAcceptance::Accept,
                );
            let _ = st.obs.unbounded_send(Obs::Raw {
                node: st.idx,
                at: now,
                id: message_id,
            });
        }
        BenchEvent::Gossipsub(_) => {}
        BenchEvent::Kad(kad::Event::OutboundQueryProgressed {
            id, result, step, ..
        }) => match result {
            QueryResult::GetRecord(Ok(GetRecordOk::FoundRecord(PeerRecord { record, .. }))) => {
                if st.kad_found.insert(id) {
                    let _ = st.obs.unbounded_send(Obs::KadFound {
                        node: st.idx,
                        at: now,
                        key: record.key.to_vec(),
                        tag: tag_of(&record.value),
                    });
                }
                if let Some(mut q) = swarm.behaviour_mut().kad.query_mut(&id) {
                    q.finish();
                }
                if step.last {
                    st.kad_found.remove(&id);
                    st.kad_get_keys.remove(&id);
                }
            }
            // The query ended (finished, not found or timed out): report a
            // get that found nothing.
            QueryResult::GetRecord(_) if step.last => {
                let found = st.kad_found.remove(&id);
                let key = st.kad_get_keys.remove(&id);
                if let (false, Some(key)) = (found, key) {
                    let _ = st
                        .obs
                        .unbounded_send(Obs::KadGetFailed { node: st.idx, key });
                }
            }
            QueryResult::Bootstrap(_) if step.last => {
                let _ = st.obs.unbounded_send(Obs::KadBootstrapped { node: st.idx });
            }
            QueryResult::PutRecord(result) => {
                let (key, ok) = match result {
                    Ok(ok) => (ok.key.to_vec(), true),
                    Err(e) => (e.key().to_vec(), false),
                };
                let _ = st.obs.unbounded_send(Obs::KadPut { at: now, key, ok });
            }
            _ => {}
        },
        BenchEvent::Kad(_) => {}
    }
}

pub(crate) fn kad_get(swarm: &mut Swarm<Bench>, st: &mut State, key: Vec<u8>) {
    let id = swarm.behaviour_mut().kad.get_record(RecordKey::new(&key));
    st.kad_get_keys.insert(id, key);
}

/// How often one node may retry a kad get that found nothing, per round.
pub(crate) const KAD_RETRIES: u32 = 3;
