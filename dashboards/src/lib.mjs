// Building blocks for the facetrain Grafana dashboards.
//
// The JSON files in dashboards/*.json are generated from dashboards/src/*.mjs by
// `node dashboards/src/build.mjs`. Edit the sources, not the JSON: the
// dashboards-validate make target fails when the committed JSON drifts from
// what the sources produce. Only plain Node.js (>= 20) is needed, no packages.

/** Grafana dashboard schema version written into every dashboard (Grafana 12.4). */
export const SCHEMA_VERSION = 42;

/** Every panel, target and query variable uses the dashboard's datasource variable. */
export const DS = Object.freeze({ type: 'prometheus', uid: '${datasource}' });

// Prometheus scrape job labels (see dashboards/METRICS.md).
export const COORD = 'job="facetrain-coordinator"';
export const WORKER = 'job="facetrain-worker"';
/** facetrain job filter driven by the $job_id template variable. */
export const JOB = 'job_id=~"$job_id"';

/**
 * gRPC status codes that count against the coordinator's availability SLO:
 * server-side failures only. Client mistakes (InvalidArgument, NotFound,
 * AlreadyExists, PermissionDenied, Unauthenticated, FailedPrecondition,
 * OutOfRange, Aborted) and Canceled do not burn error budget.
 * Keep in sync with dashboards/rules/recording.yml.
 */
export const GRPC_ERROR_CODES = 'Unknown|DeadlineExceeded|ResourceExhausted|Unimplemented|Internal|Unavailable|DataLoss';

const clone = (v) => JSON.parse(JSON.stringify(v));

// ---------------------------------------------------------------------------
// Targets

/** A Prometheus range query (time series panels, sparklines). */
export function q(expr, legendFormat = '__auto', extra = {}) {
  return { kind: 'range', expr, legendFormat, ...extra };
}

/** A Prometheus instant query (stat / bar gauge / pie / table over the selected range). */
export function instant(expr, legendFormat = '__auto', extra = {}) {
  return { kind: 'instant', expr, legendFormat, ...extra };
}

function target(t, refId) {
  const out = {
    datasource: DS,
    editorMode: 'code',
    expr: t.expr,
    legendFormat: t.legendFormat,
    range: t.kind === 'range',
    instant: t.kind === 'instant',
    refId,
  };
  if (t.format) out.format = t.format;
  if (t.hide) out.hide = true;
  return out;
}

// ---------------------------------------------------------------------------
// Field config helpers

/** Threshold steps: thresholds(['green'], ['red', 0.5]) -> base green, red from 0.5. */
export function thresholds(...steps) {
  return {
    mode: 'absolute',
    steps: steps.map(([color, value]) => ({ color, value: value === undefined ? null : value })),
  };
}

const DEFAULT_THRESHOLDS = thresholds(['green']);

/** Override: fixed colour for a series/field name. */
export function colorByName(name, color) {
  return {
    matcher: { id: 'byName', options: name },
    properties: [{ id: 'color', value: { fixedColor: color, mode: 'fixed' } }],
  };
}

/** Override: dashed, thicker line for series whose display name matches a regex. */
export function dashedByRegex(regex) {
  return {
    matcher: { id: 'byRegexp', options: regex },
    properties: [
      { id: 'custom.lineStyle', value: { dash: [10, 10], fill: 'dash' } },
      { id: 'custom.lineWidth', value: 2 },
    ],
  };
}

function graphCustom(o) {
  return {
    axisBorderShow: false,
    axisCenteredZero: false,
    axisColorMode: 'text',
    axisLabel: o.axisLabel ?? '',
    axisPlacement: 'auto',
    ...(o.softMax !== undefined ? { axisSoftMax: o.softMax } : {}),
    barAlignment: 0,
    barWidthFactor: 0.6,
    drawStyle: o.bars ? 'bars' : 'line',
    fillOpacity: o.stack ? 35 : o.bars ? 80 : 10,
    gradientMode: 'none',
    hideFrom: { legend: false, tooltip: false, viz: false },
    insertNulls: false,
    lineInterpolation: 'linear',
    lineWidth: 1,
    pointSize: 5,
    scaleDistribution: o.log ? { log: o.log, type: 'log' } : { type: 'linear' },
    showPoints: 'never',
    spanNulls: false,
    stacking: { group: 'A', mode: o.stack ? 'normal' : 'none' },
    thresholdsStyle: { mode: o.thresholdStyle ?? 'off' },
  };
}

function defaults(o, custom) {
  const d = {
    color: o.color ?? { mode: 'palette-classic' },
  };
  if (custom) d.custom = custom;
  if (o.decimals !== undefined) d.decimals = o.decimals;
  if (o.mappings) d.mappings = o.mappings;
  if (o.max !== undefined) d.max = o.max;
  if (o.min !== undefined) d.min = o.min;
  if (o.noValue !== undefined) d.noValue = o.noValue;
  d.thresholds = clone(o.thresholds ?? DEFAULT_THRESHOLDS);
  d.unit = o.unit ?? 'short';
  return d;
}

// ---------------------------------------------------------------------------
// Panels. Every builder returns a panel without id/gridPos; layout() adds them.
// Common options: description, unit, min, max, decimals, thresholds, overrides,
// w (grid width, default 12), h (grid height).

function base(type, title, targets, o) {
  if (!o.description) throw new Error(`panel "${title}" needs a description`);
  const refIds = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ';
  return {
    datasource: DS,
    description: o.description,
    type,
    title,
    targets: targets.map((t, i) => target(t, refIds[i])),
    _w: o.w ?? 12,
    _h: o.h ?? 8,
  };
}

export function timeseries(title, targets, o = {}) {
  const p = base('timeseries', title, targets, o);
  return {
    ...p,
    fieldConfig: { defaults: defaults(o, graphCustom(o)), overrides: o.overrides ?? [] },
    options: {
      legend: {
        calcs: o.legendCalcs ?? [],
        displayMode: o.legendCalcs ? 'table' : 'list',
        placement: 'bottom',
        showLegend: true,
      },
      tooltip: { hideZeros: false, mode: 'multi', sort: 'desc' },
    },
  };
}

export function stat(title, targets, o = {}) {
  const p = base('stat', title, targets, { h: 5, w: 6, ...o });
  return {
    ...p,
    fieldConfig: {
      defaults: defaults({ color: { mode: 'thresholds' }, ...o }),
      overrides: o.overrides ?? [],
    },
    options: {
      colorMode: o.colorMode ?? 'value',
      graphMode: targets.every((t) => t.kind === 'range') ? 'area' : 'none',
      justifyMode: 'auto',
      orientation: 'auto',
      percentChangeColorMode: 'standard',
      reduceOptions: { calcs: ['lastNotNull'], fields: '', values: false },
      showPercentChange: false,
      textMode: o.textMode ?? 'auto',
      wideLayout: true,
    },
  };
}

export function bargauge(title, targets, o = {}) {
  const p = base('bargauge', title, targets, o);
  return {
    ...p,
    fieldConfig: {
      defaults: defaults({ color: { mode: 'thresholds' }, min: 0, ...o }),
      overrides: o.overrides ?? [],
    },
    options: {
      displayMode: 'gradient',
      legend: { calcs: [], displayMode: 'list', placement: 'bottom', showLegend: false },
      maxVizHeight: 300,
      minVizHeight: 16,
      minVizWidth: 8,
      namePlacement: 'auto',
      orientation: 'horizontal',
      reduceOptions: { calcs: ['lastNotNull'], fields: '', values: false },
      showUnfilled: true,
      sizing: 'auto',
      valueMode: 'color',
    },
  };
}

export function piechart(title, targets, o = {}) {
  const p = base('piechart', title, targets, o);
  return {
    ...p,
    fieldConfig: {
      defaults: defaults(o, { hideFrom: { legend: false, tooltip: false, viz: false } }),
      overrides: o.overrides ?? [],
    },
    options: {
      displayLabels: ['percent'],
      orientation: 'auto',
      legend: { calcs: [], displayMode: 'table', placement: 'right', showLegend: true, values: ['value'] },
      pieType: 'donut',
      reduceOptions: { calcs: ['lastNotNull'], fields: '', values: false },
      sort: 'desc',
      tooltip: { hideZeros: false, mode: 'single', sort: 'none' },
    },
  };
}

/**
 * Table of instant queries in "table" format, one row per series. `columns`
 * renames value columns: { 'Value #A': 'Requests' }; Time is always hidden.
 */
export function table(title, targets, o = {}) {
  const p = base('table', title, targets.map((t) => ({ ...t, format: 'table' })), o);
  return {
    ...p,
    fieldConfig: {
      defaults: defaults(o, {
        align: 'auto',
        cellOptions: { type: 'auto' },
        footer: { reducers: [] },
        inspect: false,
      }),
      overrides: o.overrides ?? [],
    },
    options: {
      cellHeight: 'sm',
      frameIndex: 0,
      showHeader: true,
      sortBy: o.sortBy ? [{ desc: true, displayName: o.sortBy }] : [],
    },
    transformations: [
      ...(targets.length > 1 ? [{ id: 'merge', options: {} }] : []),
      {
        id: 'organize',
        options: {
          excludeByName: { Time: true },
          includeByName: {},
          indexByName: {},
          renameByName: o.columns ?? {},
        },
      },
    ],
  };
}

// ---------------------------------------------------------------------------
// Layout

/** A collapsible-row marker; layout() turns it into a row panel. */
export function row(title) {
  return { _row: title };
}

/**
 * Assign ids and grid positions. Panels flow left to right on a 24-wide grid
 * and wrap; a row() starts a new line. Ids are assigned in order, so they are
 * stable as long as the order of panels in the source is.
 */
export function layout(items) {
  const out = [];
  let id = 1;
  let x = 0;
  let y = 0;
  let lineH = 0;
  const newline = () => {
    y += lineH;
    x = 0;
    lineH = 0;
  };
  for (const it of items) {
    if (it._row) {
      newline();
      out.push({
        collapsed: false,
        gridPos: { h: 1, w: 24, x: 0, y },
        id: id++,
        panels: [],
        title: it._row,
        type: 'row',
      });
      y += 1;
      continue;
    }
    const { _w: w, _h: h, ...panel } = it;
    if (x + w > 24) newline();
    out.push({ ...panel, gridPos: { h, w, x, y }, id: id++ });
    x += w;
    lineH = Math.max(lineH, h);
  }
  return out;
}

// ---------------------------------------------------------------------------
// Template variables

export function datasourceVar() {
  return {
    hide: 0,
    includeAll: false,
    label: 'Data source',
    multi: false,
    name: 'datasource',
    options: [],
    query: 'prometheus',
    refresh: 1,
    regex: '',
    skipUrlSync: false,
    type: 'datasource',
  };
}

/** A multi-value query variable over label_values(); "All" matches everything. */
export function labelValuesVar(name, label, metricSelector, description) {
  const query = `label_values(${metricSelector}, ${name})`;
  return {
    allValue: '.*',
    current: { selected: true, text: ['All'], value: ['$__all'] },
    datasource: DS,
    description,
    hide: 0,
    includeAll: true,
    label,
    multi: true,
    name,
    options: [],
    query: { qryType: 1, query, refId: 'PrometheusVariableQueryEditor-VariableQuery' },
    refresh: 2,
    regex: '',
    skipUrlSync: false,
    sort: 1,
    type: 'query',
  };
}

// ---------------------------------------------------------------------------
// Dashboard

export function dashboard({ uid, title, description, tags = [], variables, panels, time = 'now-6h' }) {
  return {
    annotations: {
      list: [
        {
          builtIn: 1,
          datasource: { type: 'grafana', uid: '-- Grafana --' },
          enable: true,
          hide: true,
          iconColor: 'rgba(0, 211, 255, 1)',
          name: 'Annotations & Alerts',
          type: 'dashboard',
        },
        {
          datasource: DS,
          enable: true,
          hide: false,
          iconColor: 'red',
          name: 'facetrain alerts',
          // Prometheus-plugin annotation fields (not part of the core schema).
          tagKeys: 'severity',
          target: {
            datasource: DS,
            expr: 'ALERTS{alertname=~"Facetrain.+", alertstate="firing"}',
            refId: 'Anno',
          },
          textFormat: '{{job_id}} {{instance}}',
          titleFormat: '{{alertname}}',
        },
      ],
    },
    description,
    editable: true,
    fiscalYearStartMonth: 0,
    graphTooltip: 1,
    id: null,
    links: [
      {
        asDropdown: true,
        icon: 'external link',
        includeVars: false,
        keepTime: true,
        tags: ['facetrain'],
        targetBlank: false,
        title: 'facetrain dashboards',
        tooltip: '',
        type: 'dashboards',
      },
    ],
    panels: layout(panels),
    refresh: '1m',
    schemaVersion: SCHEMA_VERSION,
    tags: ['facetrain', ...tags],
    templating: { list: [datasourceVar(), ...variables] },
    time: { from: time, to: 'now' },
    timepicker: {},
    timezone: 'browser',
    title,
    uid,
    version: 1,
    weekStart: '',
  };
}
