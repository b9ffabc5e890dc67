/**
 * The ledger of replayed dead letters (`dlq_replays`): a dead-letter record is
 * claimed (lightweight transaction) before its copy is sent to the source
 * topic and confirmed after, so `loopline dlq replay` re-delivers a record
 * once however often it runs. A claim left unconfirmed (the process died
 * between claim and send) is reported, never resent silently.
 */
import type cassandra from 'cassandra-driver';
import { IDEMPOTENT, storeCall } from './errors.js';

export interface ReplayKey {
  /** Physical dead-letter topic. */
  dlqTopic: string;
  partition: number;
  offset: string;
}

export interface ReplayRow extends ReplayKey {
  sourceTopic: string;
  status: 'claimed' | 'sent';
  code: string | null;
  patched: boolean;
  actor: string;
  claimedAt: number;
  sentAt: number | null;
  /** `<partition>/<offset>` of the copy on the source topic. */
  replayedTo: string | null;
}

export interface DlqReplayLedger {
  /** Claims a record for replay; returns null when this call claimed it, else the existing row. */
  claim(row: Omit<ReplayRow, 'status' | 'sentAt' | 'replayedTo' | 'claimedAt'>): Promise<ReplayRow | null>;
  confirm(key: ReplayKey, replayedTo: string): Promise<void>;
  /** Releases a claim whose send failed, so a later replay may try again. */
  release(key: ReplayKey): Promise<void>;
  list(dlqTopic: string): Promise<ReplayRow[]>;
}

function toRow(r: cassandra.types.Row): ReplayRow {
  return {
    dlqTopic: r.get('dlq_topic'),
    partition: r.get('partition'),
    offset: String(r.get('offset')),
    sourceTopic: r.get('source_topic'),
    status: r.get('status'),
    code: r.get('code'),
    patched: Boolean(r.get('patched')),
    actor: r.get('actor'),
    claimedAt: (r.get('claimed_at') as Date).getTime(),
    sentAt: (r.get('sent_at') as Date | null)?.getTime() ?? null,
    replayedTo: r.get('replayed_to'),
  };
}

const COLUMNS = 'dlq_topic, partition, offset, source_topic, status, code, patched, actor, claimed_at, sent_at, replayed_to';

export function createDlqReplayLedger(cql: cassandra.Client): DlqReplayLedger {
  return {
    claim(row) {
      return storeCall(`claiming dead letter ${row.dlqTopic}/${row.partition}/${row.offset} for replay`, async () => {
        const rs = await cql.execute(
          `INSERT INTO dlq_replays (${COLUMNS}) VALUES (?, ?, ?, ?, 'claimed', ?, ?, ?, ?, null, null) IF NOT EXISTS`,
          [row.dlqTopic, row.partition, row.offset, row.sourceTopic, row.code, row.patched, row.actor, new Date()],
          { prepare: true, isIdempotent: false },
        );
        if (rs.wasApplied()) return null;
        const existing = await cql.execute(`SELECT ${COLUMNS} FROM dlq_replays WHERE dlq_topic = ? AND partition = ? AND offset = ?`, [row.dlqTopic, row.partition, row.offset], IDEMPOTENT);
        return toRow(existing.first()!);
      });
    },
    confirm(key, replayedTo) {
      return storeCall(`confirming the replay of ${key.dlqTopic}/${key.partition}/${key.offset}`, async () => {
        await cql.execute("UPDATE dlq_replays SET status = 'sent', sent_at = ?, replayed_to = ? WHERE dlq_topic = ? AND partition = ? AND offset = ?", [new Date(), replayedTo, key.dlqTopic, key.partition, key.offset], IDEMPOTENT);
      });
    },
    release(key) {
      return storeCall(`releasing the replay claim of ${key.dlqTopic}/${key.partition}/${key.offset}`, async () => {
        await cql.execute("DELETE FROM dlq_replays WHERE dlq_topic = ? AND partition = ? AND offset = ? IF status = 'claimed'", [key.dlqTopic, key.partition, key.offset], { prepare: true, isIdempotent: false });
      });
    },
    list(dlqTopic) {
      return storeCall(`reading the replays of ${dlqTopic}`, async () => {
        const rs = await cql.execute(`SELECT ${COLUMNS} FROM dlq_replays WHERE dlq_topic = ?`, [dlqTopic], IDEMPOTENT);
        return rs.rows.map(toRow);
      });
    },
  };
}
