// facetrain / Reliability and toil (uid facetrain-reliability)
//
// Incidents are rare events: the single-number panels are instant queries over
// the whole selected time range ($__range); the time series use
// $__rate_interval and show rates per hour.
import {
  COORD, JOB, q, instant, stat, timeseries, bargauge, piechart, row, dashboard,
  labelValuesVar, thresholds, colorByName, dashedByRegex,
} from './lib.mjs';

const incidents = `facetrain_incidents_total{${JOB}}`;
const TOIL_BUDGET = 0.5;

export default dashboard({
  uid: 'facetrain-reliability',
  title: 'facetrain / Reliability and toil',
  description:
    'Incidents by cause, time to recover, automated vs. manual recoveries, lost work, hands-on toil against its budget, checkpoints. ' +
    'Metrics contract: dashboards/METRICS.md.',
  tags: ['reliability'],
  time: 'now-7d',
  variables: [
    labelValuesVar('job_id', 'Job', 'facetrain_job_step', 'facetrain job id (label job_id). Recovery-time, toil and checkpoint-duration metrics are fleet-wide and ignore it.'),
  ],
  panels: [
    row('Incidents'),
    stat('Open incidents', [q(`sum(facetrain_incidents_open{${COORD}, ${JOB}})`, 'open')], {
      description: 'Incidents detected and not yet resolved.',
      w: 4, decimals: 0, colorMode: 'background', thresholds: thresholds(['green'], ['red', 1]),
    }),
    stat('Incidents', [instant(`sum(increase(${incidents}[$__range]))`, 'incidents')], {
      description: 'Incidents resolved in the selected time range (all causes).',
      w: 4, decimals: 0, noValue: '0', thresholds: thresholds(['green'], ['yellow', 1]),
    }),
    stat('Recovered by automation', [
      instant(
        `sum(increase(facetrain_incidents_total{${JOB}, resolved_by="automation"}[$__range]))\n/\nsum(increase(${incidents}[$__range]))`,
        'automated',
      ),
    ], {
      description: 'Share of the incidents resolved in the selected range that automation resolved without a person.',
      w: 4, unit: 'percentunit', decimals: 1, thresholds: thresholds(['red'], ['yellow', 0.8], ['green', 0.95]),
    }),
    stat('MTTR', [
      instant(
        'sum(increase(facetrain_recovery_duration_seconds_sum[$__range]))\n/\n' +
        'sum(increase(facetrain_recovery_duration_seconds_count[$__range]))',
        'MTTR',
      ),
    ], {
      description: 'Mean time to recover (detection until training again) over the selected range, all causes, all jobs.',
      w: 4, unit: 's', thresholds: thresholds(['green'], ['yellow', 300], ['red', 900]),
    }),
    stat('p90 time to recover', [
      instant('histogram_quantile(0.9, sum by (le) (increase(facetrain_recovery_duration_seconds_bucket[$__range])))', 'p90'),
    ], {
      description: '90th percentile of recovery time over the selected range, estimated from the facetrain_recovery_duration_seconds histogram buckets.',
      w: 4, unit: 's', thresholds: thresholds(['green'], ['yellow', 600], ['red', 1800]),
    }),
    stat('Lost work', [instant(`sum(increase(facetrain_lost_work_seconds_total{${JOB}}[$__range]))`, 'lost')], {
      description: 'Training time thrown away (work since the last checkpoint that had to be redone) in the selected range.',
      w: 4, unit: 's', noValue: '0', thresholds: thresholds(['green'], ['yellow', 600], ['red', 3600]),
    }),
    timeseries('Incidents per hour by cause', [
      q(`sum by (cause) (rate(${incidents}[$__rate_interval])) * 3600`, '{{cause}}'),
    ], {
      description: 'Rate of resolved incidents per hour, by cause.',
      unit: 'short', axisLabel: 'incidents/h', min: 0, w: 12, stack: true,
    }),
    bargauge('Incidents by cause', [
      instant(`sort_desc(sum by (cause) (increase(${incidents}[$__range])))`, '{{cause}}'),
    ], {
      description: 'Incidents resolved in the selected range, by cause.',
      w: 6, decimals: 0, color: { mode: 'palette-classic' },
    }),
    piechart('Resolved by', [
      instant(`sum by (resolved_by) (increase(${incidents}[$__range]))`, '{{resolved_by}}'),
    ], {
      description: 'Incidents in the selected range resolved by automation vs. by a person.',
      w: 6, decimals: 0, overrides: [colorByName('automation', 'green'), colorByName('person', 'orange')],
    }),

    row('Recovery'),
    timeseries('Recoveries per hour: automation vs. person', [
      q(`sum by (resolved_by) (rate(${incidents}[$__rate_interval])) * 3600`, '{{resolved_by}}'),
    ], {
      description: 'Incidents resolved per hour by automation and by people. Every recovery by a person is a candidate for automation.',
      unit: 'short', axisLabel: 'recoveries/h', min: 0, w: 12, stack: true,
      overrides: [colorByName('automation', 'green'), colorByName('person', 'orange')],
    }),
    bargauge('Mean time to recover by cause', [
      instant(
        'sort_desc(\n  sum by (cause) (increase(facetrain_recovery_duration_seconds_sum[$__range]))\n/\n' +
        '  sum by (cause) (increase(facetrain_recovery_duration_seconds_count[$__range]))\n)',
        '{{cause}}',
      ),
    ], {
      description: 'Mean recovery time per incident cause over the selected range.',
      w: 12, unit: 's', thresholds: thresholds(['green'], ['yellow', 300], ['red', 900]),
    }),
    timeseries('Lost work per hour', [
      q(`sum by (job_id) (rate(facetrain_lost_work_seconds_total{${JOB}}[$__rate_interval])) * 3600`, '{{job_id}}'),
    ], {
      description: 'Seconds of training redone per hour of wall time, by job (roll-backs to the last checkpoint).',
      unit: 's', min: 0, w: 12, bars: true,
    }),
    timeseries('worker_lost incidents per hour', [
      q(`sum by (job_id) (rate(facetrain_incidents_total{${JOB}, cause="worker_lost"}[$__rate_interval])) * 3600`, '{{job_id}}'),
    ], {
      description: 'Lost-worker incidents per hour and job. The dashed line is the FacetrainWorkerFlapping threshold (more than 3 in an hour).',
      unit: 'short', axisLabel: 'incidents/h', min: 0, w: 12,
      thresholds: thresholds(['green'], ['red', 3]), thresholdStyle: 'dashed',
    }),

    row('Toil'),
    stat('Toil ratio', [
      instant(
        'sum(increase(facetrain_toil_seconds_total[$__range]))\n/\n' +
        `sum(increase(facetrain_job_running_seconds_total{${COORD}}[$__range]))`,
        'toil ratio',
      ),
    ], {
      description: `Hands-on seconds spent by people per second of job running time, fleet-wide, over the selected range. Budget: ${TOIL_BUDGET} (red at or above the budget).`,
      w: 4, unit: 'percentunit', decimals: 1, colorMode: 'background',
      thresholds: thresholds(['green'], ['red', TOIL_BUDGET]),
    }),
    stat('Toil', [instant('sum(increase(facetrain_toil_seconds_total[$__range]))', 'toil')], {
      description: 'Hands-on time spent by people on cancel/resume/restart/scale/evict in the selected range.',
      w: 4, unit: 's', noValue: '0',
    }),
    stat('Job running time', [
      instant(`sum(increase(facetrain_job_running_seconds_total{${COORD}}[$__range]))`, 'running'),
    ], {
      description: 'Total wall time jobs spent running in the selected range, summed over jobs (the toil ratio denominator).',
      w: 4, unit: 's', color: { mode: 'fixed', fixedColor: 'text' },
    }),
    bargauge('Toil by kind', [
      instant('sort_desc(sum by (kind) (increase(facetrain_toil_seconds_total[$__range])))', '{{kind}}'),
    ], {
      description: 'Hands-on seconds by kind of intervention in the selected range.',
      w: 12, h: 5, unit: 's', color: { mode: 'palette-classic' },
    }),
    timeseries('Toil ratio vs. budget', [
      q(
        'sum(rate(facetrain_toil_seconds_total[$__rate_interval]))\n/\n' +
        `sum(rate(facetrain_job_running_seconds_total{${COORD}}[$__rate_interval]))`,
        'toil ratio',
      ),
      q('facetrain:toil_ratio:rate6h', 'toil ratio, 6h (alert window)'),
    ], {
      description: `Toil seconds per job-running second. The red dashed line is the budget (${TOIL_BUDGET}); FacetrainToilBudgetExceeded fires when the 6h ratio stays above it for 30m.`,
      unit: 'percentunit', min: 0, softMax: 1, w: 12,
      thresholds: thresholds(['green'], ['red', TOIL_BUDGET]), thresholdStyle: 'dashed',
      overrides: [dashedByRegex('.*alert window.*')],
    }),
    timeseries('Toil per hour by kind', [
      q('sum by (kind) (rate(facetrain_toil_seconds_total[$__rate_interval])) * 3600', '{{kind}} (seconds/h)'),
      q('sum by (kind) (rate(facetrain_toil_events_total[$__rate_interval])) * 3600', '{{kind}} (events/h)'),
    ], {
      description: 'Hands-on seconds per hour (bars, left axis) and interventions per hour (lines, right axis), by kind.',
      unit: 's', min: 0, w: 12, bars: true, stack: true,
      overrides: [{
        matcher: { id: 'byFrameRefID', options: 'B' },
        properties: [
          { id: 'unit', value: 'short' },
          { id: 'custom.drawStyle', value: 'line' },
          { id: 'custom.stacking', value: { group: 'B', mode: 'none' } },
          { id: 'custom.fillOpacity', value: 0 },
          { id: 'custom.axisPlacement', value: 'right' },
          { id: 'custom.axisLabel', value: 'events/h' },
        ],
      }],
    }),

    row('Checkpoints'),
    timeseries('Checkpoint duration p95 and p50', [
      q('histogram_quantile(0.95, sum by (le) (rate(facetrain_checkpoint_duration_seconds_bucket[$__rate_interval])))', 'p95'),
      q('histogram_quantile(0.5, sum by (le) (rate(facetrain_checkpoint_duration_seconds_bucket[$__rate_interval])))', 'p50'),
    ], {
      description: 'Time to write a checkpoint (successful checkpoints only). Dashed: p50.',
      unit: 's', min: 0, w: 8, overrides: [dashedByRegex('p50')],
    }),
    stat('Checkpoint failures', [instant('sum(increase(facetrain_checkpoint_failures_total[$__range]))', 'failures')], {
      description: 'Checkpoint writes that failed in the selected range.',
      w: 4, h: 8, decimals: 0, noValue: '0', thresholds: thresholds(['green'], ['red', 1]),
    }),
    bargauge('Time since last checkpoint (running jobs)', [
      instant(
        `sort_desc(\n  time() - max by (job_id) (facetrain_last_checkpoint_timestamp_seconds{${JOB}})\n` +
        `  and on (job_id)\n  rate(facetrain_job_running_seconds_total{${JOB}}[$__rate_interval]) > 0\n)`,
        '{{job_id}}',
      ),
    ], {
      description: 'Age of the newest checkpoint of every running job: the work at risk if the job failed now.',
      w: 12, unit: 's', thresholds: thresholds(['green'], ['yellow', 1800], ['red', 3600]),
    }),
  ],
});
