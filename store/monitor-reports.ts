/**
 * Monitor reports in Cassandra (`monitor_reports`, by pipeline and kind,
 * newest first): every quality and drift report the drift monitor emits, for
 * analysts, `loopline status` and the dashboard. Keyed by report id, so a
 * replayed report rewrites the same row.
 */
import type cassandra from 'cassandra-driver';
import type { DriftReport, QualityReport } from '../schemas/types.js';
import { IDEMPOTENT, storeCall } from './errors.js';

export type StoredReport = { kind: 'quality'; variant: string; report: QualityReport } | { kind: 'drift'; variant: string; report: DriftReport };

export interface MonitorReportStore {
  write(reports: readonly StoredReport[]): Promise<void>;
  /** The newest reports of a kind, newest first. */
  latest(pipeline: string, kind: 'quality' | 'drift', limit: number): Promise<StoredReport[]>;
}

export function createMonitorReportStore(cql: cassandra.Client): MonitorReportStore {
  return {
    write(reports) {
      return storeCall(`writing ${reports.length} monitor reports`, async () => {
        await Promise.all(
          reports.map((r) =>
            cql.execute(
              'INSERT INTO monitor_reports (pipeline, kind, created_at, report_id, model_version, variant, body) VALUES (?, ?, ?, ?, ?, ?, ?)',
              [r.report.pipeline, r.kind, new Date(r.report.created_at), r.report.report_id, r.report.model_version, r.variant, JSON.stringify(r.report)],
              IDEMPOTENT,
            ),
          ),
        );
      });
    },
    latest(pipeline, kind, limit) {
      return storeCall(`reading ${kind} reports of ${pipeline}`, async () => {
        const rs = await cql.execute('SELECT variant, body FROM monitor_reports WHERE pipeline = ? AND kind = ? LIMIT ?', [pipeline, kind, limit], IDEMPOTENT);
        return rs.rows.map((row) => ({ kind, variant: row.get('variant') as string, report: JSON.parse(row.get('body') as string) }) as StoredReport);
      });
    },
  };
}
