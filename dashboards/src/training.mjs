// facetrain / Training overview (uid facetrain-training)
import {
  COORD, WORKER, JOB, q, instant, stat, timeseries, bargauge, table, row, dashboard,
  labelValuesVar, thresholds, colorByName, dashedByRegex,
} from './lib.mjs';

const stepQuantile = (quantile, sel) =>
  `histogram_quantile(${quantile}, sum by (job_id, phase, le) (rate(facetrain_step_duration_seconds_bucket{${sel}}[$__rate_interval])))`;

const workerPhases = `${WORKER}, ${JOB}, phase=~"data|compute|reduce|apply"`;
const coordTotal = `${COORD}, ${JOB}, phase="total"`;

const computePerWorker = `facetrain_worker_step_compute_seconds{${JOB}}`;
const computeMedian = `quantile by (job_id) (0.5, max by (job_id, worker) (${computePerWorker}))`;

export default dashboard({
  uid: 'facetrain-training',
  title: 'facetrain / Training overview',
  description:
    'Jobs and workers, throughput, step time by phase, loss/accuracy and straggling workers. ' +
    'Metrics contract: dashboards/METRICS.md.',
  tags: ['training'],
  variables: [
    labelValuesVar('job_id', 'Job', 'facetrain_job_step', 'facetrain job id (label job_id).'),
  ],
  panels: [
    row('Fleet'),
    stat('Jobs by state', [q(`sum by (state) (facetrain_jobs{${COORD}})`, '{{state}}')], {
      description: 'Number of facetrain jobs in each state, as reported by the coordinator. Not filtered by $job_id.',
      w: 9, h: 6, textMode: 'value_and_name', color: { mode: 'fixed', fixedColor: 'text' }, decimals: 0,
      overrides: [
        colorByName('queued', 'yellow'), colorByName('running', 'blue'), colorByName('succeeded', 'green'),
        colorByName('failed', 'red'), colorByName('cancelled', 'text'),
      ],
    }),
    stat('Workers by state', [q(`sum by (state) (facetrain_workers{${COORD}})`, '{{state}}')], {
      description: 'Registered workers by state. "lost" workers stopped heart-beating and are being replaced.',
      w: 7, h: 6, textMode: 'value_and_name', color: { mode: 'fixed', fixedColor: 'text' }, decimals: 0,
      overrides: [colorByName('idle', 'text'), colorByName('training', 'green'), colorByName('lost', 'red')],
    }),
    table('Running versions', [instant('count by (job, component, version) (facetrain_build_info)')], {
      description: 'Build version of every scraped facetrain process. More than one version per component means a rollout is in progress (or stuck).',
      w: 8, h: 6, columns: { job: 'Scrape job', component: 'Component', version: 'Version', Value: 'Processes' },
    }),

    row('Throughput and progress'),
    timeseries('Throughput', [
      q(`sum by (job_id) (rate(facetrain_samples_total{${COORD}, ${JOB}}[$__rate_interval]))`, '{{job_id}}'),
    ], {
      description: 'Training samples consumed per second by all workers of a job (coordinator-side counter, so workers are not double counted).',
      unit: 'short', axisLabel: 'samples/s', min: 0, w: 8, legendCalcs: ['mean', 'lastNotNull'],
    }),
    timeseries('Global step', [q(`max by (job_id) (facetrain_job_step{${COORD}, ${JOB}})`, '{{job_id}}')], {
      description: 'Last completed global step. A flat line on a running job is what FacetrainJobStalled alerts on.',
      unit: 'none', min: 0, w: 8, decimals: 0,
    }),
    timeseries('Gradient reduce traffic', [
      q(`sum by (job_id, strategy) (rate(facetrain_reduce_bytes_total{${WORKER}, ${JOB}}[$__rate_interval]))`, '{{job_id}} {{strategy}} (workers)'),
      q(`sum by (job_id, strategy) (rate(facetrain_reduce_bytes_total{${COORD}, ${JOB}}[$__rate_interval]))`, '{{job_id}} {{strategy}} (coordinator)'),
    ], {
      description: 'Bytes sent plus received for gradient reduction, summed over all workers and separately at the coordinator. With the ring strategy the coordinator carries no gradient traffic.',
      unit: 'Bps', min: 0, w: 8, overrides: [dashedByRegex('.*\\(coordinator\\)$')],
    }),

    row('Step time'),
    timeseries('Step time by phase (workers), p95 and p50', [
      q(stepQuantile(0.95, workerPhases), '{{job_id}} {{phase}} p95'),
      q(stepQuantile(0.5, workerPhases), '{{job_id}} {{phase}} p50'),
    ], {
      description: 'Per-phase step time observed by workers (data loading, forward/backward compute, gradient reduce, optimizer apply), from the facetrain_step_duration_seconds histogram. Dashed: p50.',
      unit: 's', min: 0, w: 12, overrides: [dashedByRegex('.* p50$')],
    }),
    timeseries('Step time total (coordinator), p95 and p50', [
      q(stepQuantile(0.95, coordTotal), '{{job_id}} p95'),
      q(stepQuantile(0.5, coordTotal), '{{job_id}} p50'),
      q(`facetrain:step_duration_seconds:p95_rate5m_baseline1d{${coordTotal}}`, '{{job_id}} p95 baseline (median of previous day)'),
    ], {
      description: 'Wall time of a whole global step as seen by the coordinator. The baseline is the recording rule FacetrainStepTimeRegression compares against (alert at 1.5x). Dashed: p50 and baseline.',
      unit: 's', min: 0, w: 12, overrides: [dashedByRegex('.* (p50|baseline.*)$')],
    }),
    timeseries('Mean step time breakdown (workers)', [
      q(
        `sum by (phase) (rate(facetrain_step_duration_seconds_sum{${workerPhases}}[$__rate_interval]))\n/\n` +
        `sum by (phase) (rate(facetrain_step_duration_seconds_count{${workerPhases}}[$__rate_interval]))`,
        '{{phase}}',
      ),
    ], {
      description: 'Mean time per step spent in each phase, stacked, across the selected jobs and all their workers. Select a single job for a meaningful breakdown.',
      unit: 's', min: 0, w: 24, h: 7, stack: true, bars: false,
    }),

    row('Model quality'),
    timeseries('Training loss', [q(`facetrain_loss{${COORD}, ${JOB}}`, '{{job_id}}')], {
      description: 'Loss of the last completed step.',
      unit: 'none', w: 12,
    }),
    timeseries('Accuracy', [q(`facetrain_accuracy_ratio{${COORD}, ${JOB}}`, '{{job_id}} {{split}}')], {
      description: 'Accuracy on the training batches and on the validation split. Dashed: train. A flat validation line for an hour raises FacetrainAccuracyNotImproving.',
      unit: 'percentunit', min: 0, max: 1, w: 12, overrides: [dashedByRegex('.* train$')],
    }),

    row('Stragglers'),
    timeseries('Compute time per worker vs job median', [
      q(`max by (job_id, worker) (${computePerWorker})`, '{{job_id}} {{worker}}'),
      q(computeMedian, '{{job_id}} median'),
    ], {
      description: 'Compute time of the last step on every worker; the dashed line is the median over the workers of the same job. Workers well above the median hold up every synchronous step.',
      unit: 's', min: 0, w: 12, overrides: [dashedByRegex('.* median$')],
    }),
    bargauge('Straggler ratio (compute time / job median)', [
      instant(`sort_desc(\n  max by (job_id, worker) (${computePerWorker})\n/ on (job_id) group_left ()\n  ${computeMedian}\n)`, '{{job_id}} {{worker}}'),
    ], {
      description: 'Current compute time of each worker relative to the median of its job. 1.0 is typical; yellow from 1.2x, red from 1.5x.',
      unit: 'none', decimals: 2, max: 2, w: 12, thresholds: thresholds(['green'], ['yellow', 1.2], ['red', 1.5]),
    }),
    timeseries('Samples per second per worker', [
      q(`sum by (job_id, instance) (rate(facetrain_samples_total{${WORKER}, ${JOB}}[$__rate_interval]))`, '{{job_id}} {{instance}}'),
    ], {
      description: 'Samples consumed per second by each worker pod (worker-side counter).',
      unit: 'short', axisLabel: 'samples/s', min: 0, w: 24, h: 7,
    }),

    row('Workers: what they run on'),
    timeseries('Workers wanted vs registered', [
      q(`sum by (backend) (facetrain_workers_wanted{${COORD}})`, 'wanted {{backend}}'),
      q(`sum(facetrain_workers{${COORD}, state!="lost"})`, 'registered'),
    ], {
      description: 'Workers the queued and running jobs want (what the autoscaler sizes the pool to, down to 0) against the workers registered. Wanted above registered for long: the pool is at its maximum or scale-up is stuck.',
      unit: 'short', min: 0, w: 12,
    }),
    timeseries('Queue wait (p95)', [
      q(`histogram_quantile(0.95, sum by (le) (rate(facetrain_queue_wait_seconds_bucket{${COORD}}[$__rate_interval])))`, 'p95'),
    ], {
      description: 'Time from submission to a job\'s first start: waiting for free workers, including a scale-up from zero (GPU nodes take minutes).',
      unit: 's', min: 0, w: 12,
    }),
    table('Backends and devices per worker', [instant(`count by (instance, backend, device) (facetrain_worker_info{${WORKER}})`)], {
      description: 'What each worker offers the coordinator: a job goes only to workers listing its backend. A GPU pod without a cuda row did not see its GPU (driver not mounted, CUDA_VISIBLE_DEVICES).',
      w: 24, h: 6, columns: { instance: 'Worker', backend: 'Backend', device: 'Device', Value: 'Series' },
    }),

    row('Data pipeline (workers)'),
    timeseries('Images decoded per second', [
      q(`sum by (instance) (rate(facetrain_pipeline_images_total{${WORKER}}[$__rate_interval]))`, '{{instance}}'),
    ], {
      description: 'Images decoded and augmented per second by each worker pod. Not filtered by $job_id (the pipeline metrics carry no job label).',
      unit: 'short', axisLabel: 'images/s', min: 0, w: 12,
    }),
    timeseries('Data wait per step (p95)', [
      q(`histogram_quantile(0.95, sum by (le, instance) (rate(facetrain_step_duration_seconds_bucket{${WORKER}, phase="data"}[$__rate_interval])))`, '{{instance}}'),
    ], {
      description: 'Time each worker pod spent preparing its share of a batch (decode cache lookup, augmentation, batching) before computing. A rising data phase means the input pipeline is the bottleneck.',
      unit: 's', min: 0, w: 12,
    }),
  ],
});
