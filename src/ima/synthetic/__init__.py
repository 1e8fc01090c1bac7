"""Generated streams, for the demo, smoke tests and benchmarks: `chatter` (a Zipfian
English and Japanese stream with reposts, floods, bursts and engagement) and `events`
(chatter with planted events and floods). Quality is measured on real text, not on
these."""
