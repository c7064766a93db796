// facetrain / Coordinator RPCs (uid facetrain-rpc)
import {
  COORD, GRPC_ERROR_CODES, q, instant, stat, timeseries, table, row, dashboard,
  labelValuesVar, thresholds, colorByName,
} from './lib.mjs';

const SLO = 0.995;
const BUDGET = +(1 - SLO).toFixed(4); // 0.005
const RPC = 'rpc=~"$rpc"';
const all = `facetrain_grpc_requests_total{${COORD}, ${RPC}}`;
const errors = `facetrain_grpc_requests_total{${COORD}, ${RPC}, code=~"${GRPC_ERROR_CODES}"}`;

const latency = (quantile) =>
  `histogram_quantile(${quantile}, sum by (rpc, le) (rate(facetrain_grpc_request_duration_seconds_bucket{${COORD}, ${RPC}}[$__rate_interval])))`;

export default dashboard({
  uid: 'facetrain-rpc',
  title: 'facetrain / Coordinator RPCs',
  description:
    `gRPC traffic, errors and latency of the facetrain coordinator, against its ${SLO * 100}% availability SLO. ` +
    `Errors are the server-side status codes ${GRPC_ERROR_CODES.split('|').join(', ')}. Metrics contract: dashboards/METRICS.md.`,
  tags: ['rpc'],
  time: 'now-24h',
  variables: [
    labelValuesVar('rpc', 'RPC', `facetrain_grpc_requests_total{${COORD}}`, 'gRPC method name (label rpc).'),
  ],
  panels: [
    row('SLO'),
    stat('Availability', [
      instant(
        `1 - (\n  (sum(increase(${errors}[$__range])) or vector(0))\n/\n  sum(increase(${all}[$__range]))\n)`,
        'availability',
      ),
    ], {
      description: `Share of RPCs in the selected range that did not fail with a server-side error. SLO: ${SLO * 100}% (red below).`,
      unit: 'percentunit', decimals: 3, colorMode: 'background',
      thresholds: thresholds(['red'], ['green', SLO]),
    }),
    stat('Error budget burn rate (1h)', [q(`facetrain:grpc_errors:ratio_rate1h{${COORD}} / ${BUDGET}`, 'burn rate')], {
      description: `Error ratio over the last hour divided by the error budget (${BUDGET}). 1 spends the budget exactly over the SLO period; FacetrainErrorBudgetBurn pages at 14.4 (1h and 5m) and 6 (6h and 30m). Not filtered by $rpc.`,
      decimals: 2, unit: 'none', thresholds: thresholds(['green'], ['yellow', 6], ['red', 14.4]),
    }),
    stat('Requests per second', [q(`sum(rate(${all}[$__rate_interval]))`, 'req/s')], {
      description: 'gRPC requests handled by the coordinator per second.',
      unit: 'reqps', color: { mode: 'fixed', fixedColor: 'text' },
    }),
    stat('Error ratio', [
      q(`(sum(rate(${errors}[$__rate_interval])) or vector(0))\n/\nsum(rate(${all}[$__rate_interval]))`, 'errors'),
    ], {
      description: `Share of requests failing with a server-side error right now. The SLO allows ${BUDGET * 100}%.`,
      unit: 'percentunit', decimals: 2, thresholds: thresholds(['green'], ['red', BUDGET]),
    }),

    row('Traffic'),
    timeseries('Requests per second by RPC', [q(`sum by (rpc) (rate(${all}[$__rate_interval]))`, '{{rpc}}')], {
      description: 'Requests per second for each gRPC method.',
      unit: 'reqps', min: 0, w: 12,
    }),
    timeseries('Requests per second by status code', [q(`sum by (code) (rate(${all}[$__rate_interval]))`, '{{code}}')], {
      description: 'Requests per second by gRPC status code, stacked.',
      unit: 'reqps', min: 0, w: 12, stack: true, overrides: [colorByName('OK', 'green')],
    }),

    row('Errors'),
    timeseries('Error ratio by RPC', [
      q(`sum by (rpc) (rate(${errors}[$__rate_interval]))\n/\nsum by (rpc) (rate(${all}[$__rate_interval]))`, '{{rpc}}'),
    ], {
      description: `Share of each method's requests failing with a server-side error. Dashed line: the ${BUDGET * 100}% the SLO allows.`,
      unit: 'percentunit', min: 0, w: 12, thresholds: thresholds(['green'], ['red', BUDGET]), thresholdStyle: 'dashed',
    }),
    timeseries('Error budget burn rate', [
      q(`facetrain:grpc_errors:ratio_rate5m{${COORD}} / ${BUDGET}`, '5m'),
      q(`facetrain:grpc_errors:ratio_rate1h{${COORD}} / ${BUDGET}`, '1h'),
      q(`facetrain:grpc_errors:ratio_rate6h{${COORD}} / ${BUDGET}`, '6h'),
      q(`facetrain:grpc_errors:ratio_rate3d{${COORD}} / ${BUDGET}`, '3d'),
    ], {
      description: 'Multi-window burn rates from the recording rules (all RPCs). Dashed lines: 6 and 14.4, the page thresholds of FacetrainErrorBudgetBurn.',
      unit: 'none', min: 0, w: 12, thresholds: thresholds(['green'], ['orange', 6], ['red', 14.4]), thresholdStyle: 'dashed',
    }),
    table('Non-OK responses by RPC and code', [
      instant(`sort_desc(sum by (rpc, code) (increase(facetrain_grpc_requests_total{${COORD}, ${RPC}, code!="OK"}[$__range])))`),
    ], {
      description: 'Every non-OK status returned in the selected range, including client errors that do not count against the SLO.',
      w: 12, decimals: 0, columns: { rpc: 'RPC', code: 'Code', Value: 'Responses' }, sortBy: 'Responses',
    }),

    row('Latency'),
    timeseries('Latency p99 by RPC', [q(latency(0.99), '{{rpc}}')], {
      description: 'Server-side handling time, 99th percentile, unary RPCs (streaming RPCs are not observed by the histogram).',
      unit: 's', min: 0, w: 12,
    }),
    timeseries('Latency p50 by RPC', [q(latency(0.5), '{{rpc}}')], {
      description: 'Server-side handling time, median, unary RPCs.',
      unit: 's', min: 0, w: 12,
    }),
  ],
});
