"""The store past one machine: time partitions on `ima node`s over NATS JetStream.

Posts go to a replicated JetStream stream; the stream is cut into partitions of
`span` consecutive posts (the newest, still filling, is *hot*; the others are
*sealed*: complete and read-only). Two nodes hold each partition, each consuming its
range of the stream into a plain single `Store` and acknowledging its own commits.
Ownership and membership live in JetStream key-value buckets (leases are entries that
expire); queries travel as NATS requests. A `PartitionedStore` fans a search out to
the partitions whose time range overlaps it and merges their candidates, scored on
the root with collection-wide term statistics.
"""
