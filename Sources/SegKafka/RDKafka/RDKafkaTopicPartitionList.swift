internal import CRdKafka

/// Conversions between Swift values and `rd_kafka_topic_partition_list_t`.
enum RDKafkaTopicPartitionList {
    typealias List = UnsafeMutablePointer<rd_kafka_topic_partition_list_t>

    /// One element of a list, copied out.
    struct Entry {
        var topicPartition: TopicPartition
        var offset: Int64
        var err: rd_kafka_resp_err_t
    }

    /// Runs `body` with a new list holding `entries`, destroying the list afterwards.
    static func with<R>(
        _ entries: [(TopicPartition, offset: Int64)], _ body: (List) throws -> R
    ) throws -> R {
        guard let list = rd_kafka_topic_partition_list_new(Int32(clamping: max(entries.count, 1))) else {
            throw KafkaError(.invalidArgument, "rd_kafka_topic_partition_list_new failed")
        }
        defer { rd_kafka_topic_partition_list_destroy(list) }
        for (topicPartition, offset) in entries {
            guard let element = rd_kafka_topic_partition_list_add(
                list, topicPartition.topic, topicPartition.partition)
            else { continue }
            element.pointee.offset = offset
        }
        return try body(list)
    }

    /// Copies every element of `list`.
    static func entries(_ list: UnsafePointer<rd_kafka_topic_partition_list_t>) -> [Entry] {
        let count = Int(list.pointee.cnt)
        guard count > 0, let elements = list.pointee.elems else { return [] }
        return (0..<count).map { index in
            let element = elements[index]
            return Entry(
                topicPartition: TopicPartition(
                    topic: decodeCString(element.topic), partition: element.partition),
                offset: element.offset, err: element.err)
        }
    }

    /// The first per-element error in `list`, as a ``KafkaError`` naming the partition.
    static func firstError(_ list: UnsafePointer<rd_kafka_topic_partition_list_t>, _ context: String) -> KafkaError? {
        for entry in entries(list) where entry.err != RD_KAFKA_RESP_ERR_NO_ERROR {
            return .rdKafka(entry.err, "\(context) \(entry.topicPartition)")
        }
        return nil
    }
}
