/**
 * A partition assigner for co-partitioned inputs (Kafka Streams' task
 * assignment): partition i of every subscribed topic goes to the same member,
 * so one member owns each join key. Members get partition numbers round-robin
 * in member-id order; a topic with fewer partitions simply has no partition i.
 */
import { AssignerProtocol, type PartitionAssigner } from 'kafkajs';

const { MemberAssignment, MemberMetadata } = AssignerProtocol;

/** Pure: partition numbers per member, then every topic's partition i to the member that got i. */
export function copartitionedAssignment(memberIds: readonly string[], partitionsByTopic: Record<string, number[]>): Record<string, Record<string, number[]>> {
  const members = [...memberIds].sort();
  const out: Record<string, Record<string, number[]>> = {};
  if (members.length === 0) return out;
  const numbers = [...new Set(Object.values(partitionsByTopic).flat())].sort((a, b) => a - b);
  numbers.forEach((p, i) => {
    const member = members[i % members.length]!;
    for (const [topic, partitions] of Object.entries(partitionsByTopic)) {
      if (!partitions.includes(p)) continue;
      const m = (out[member] ??= {});
      (m[topic] ??= []).push(p);
    }
  });
  return out;
}

export const copartitionedAssigner: PartitionAssigner = ({ cluster }) => ({
  name: 'LooplineCopartitionedAssigner',
  version: 0,
  async assign({ members, topics }) {
    const partitionsByTopic: Record<string, number[]> = {};
    for (const topic of topics) partitionsByTopic[topic] = cluster.findTopicPartitionMetadata(topic).map((m) => m.partitionId);
    const assignment = copartitionedAssignment(members.map((m) => m.memberId), partitionsByTopic);
    return members.map(({ memberId }) => ({
      memberId,
      memberAssignment: MemberAssignment.encode({ version: 0, assignment: assignment[memberId] ?? {}, userData: Buffer.alloc(0) }),
    }));
  },
  protocol({ topics }) {
    return { name: 'LooplineCopartitionedAssigner', metadata: MemberMetadata.encode({ version: 0, topics, userData: Buffer.alloc(0) }) };
  },
});
