/// A change of a consumer's assignment, recorded by the rebalance callback during
/// ``KafkaConsumer/poll(timeout:)`` (or ``KafkaConsumer/close()``) and returned by
/// ``KafkaConsumer/drainRebalanceEvents()``, oldest first.
///
/// With the cooperative protocol each event lists only the partitions that changed; with the
/// eager protocol a revoke lists the whole previous assignment.
public enum KafkaRebalanceEvent: Hashable, Sendable {
    /// The consumer now owns these partitions (in addition to those it already had).
    case assigned([TopicPartition])
    /// The partitions were taken away in an orderly rebalance. Offsets stored for them before the
    /// callback ran were committed (with auto commit); storing offsets for them afterwards fails
    /// with `_STATE`, so unfinished work for them will be redelivered to their new owner.
    case revoked([TopicPartition])
    /// The partitions were lost (session timeout, fenced member): another member may already
    /// process them, and commits for them fail.
    case lost([TopicPartition])
    /// librdkafka reported a rebalance error, or applying an assignment failed.
    case failed(KafkaError)
}
