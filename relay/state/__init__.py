"""A call's state kept outside the process (docs/design/redis-state.md): the per-call journal
of state-changing ng requests and media state (journal), its stored form (document) and the
replay that rebuilds the call from it (replay). No Redis here: rtpvault.redis_state stores the
bytes the journal hands to its sink."""
