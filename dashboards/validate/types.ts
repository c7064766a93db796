// Types the facetrain dashboards are checked against.
//
// 1. `Json<Dashboard>`: the official dashboard model from @grafana/schema
//    (the same package Grafana's frontend is built with).
// 2. `Json<FacetrainDashboard>`: a stricter profile of it for this repository:
//    panel options and field config typed per panel plugin (timeseries, stat,
//    bargauge, piechart, table, from @grafana/schema's panel configs) and every
//    query a Prometheus query on the `${datasource}` template variable. The core
//    schema leaves these parts as `Record<string, unknown>`.
//
// typecheck.mjs wraps each dashboards/*.json in a .ts file as an object literal
// with `satisfies`, so tsc reports unknown (misspelt) properties and missing
// required ones at the line of the JSON file.
import type {
  AnnotationQuery,
  Dashboard,
  DataQuery,
  FieldConfigSource,
  Panel,
  RowPanel,
  VariableModel,
} from '@grafana/schema';
import type * as TimeSeries from '@grafana/schema/dist/esm/raw/composable/timeseries/panelcfg/x/TimeSeriesPanelCfg_types.gen';
import type * as Stat from '@grafana/schema/dist/esm/raw/composable/stat/panelcfg/x/StatPanelCfg_types.gen';
import type * as BarGauge from '@grafana/schema/dist/esm/raw/composable/bargauge/panelcfg/x/BarGaugePanelCfg_types.gen';
import type * as PieChart from '@grafana/schema/dist/esm/raw/composable/piechart/panelcfg/x/PieChartPanelCfg_types.gen';
import type * as Table from '@grafana/schema/dist/esm/raw/composable/table/panelcfg/x/TablePanelCfg_types.gen';

/**
 * The JSON form of a schema type. JSON has no TypeScript string enums
 * (`ThresholdsMode.Absolute`): it has their values (`"absolute"`), so every
 * string enum is replaced by the union of its values. Numeric enums accept
 * number literals as they are.
 */
export type Json<T> = T extends string
  ? string extends T
    ? string
    : `${T}`
  : T extends number | boolean | null | undefined
    ? T
    : T extends ReadonlyArray<infer U>
      ? Array<Json<U>>
      : T extends object
        ? { [K in keyof T]: Json<T[K]> }
        : T;

/** Panels, targets and query variables all use the datasource template variable. */
export interface DatasourceVar {
  type: 'prometheus';
  uid: '${datasource}';
}

/** Prometheus query model (Grafana's prometheus data source plugin). */
export interface PromQuery extends Omit<DataQuery, 'datasource'> {
  datasource: DatasourceVar;
  editorMode?: 'code' | 'builder';
  exemplar?: boolean;
  expr: string;
  format?: 'time_series' | 'table' | 'heatmap';
  instant?: boolean;
  interval?: string;
  intervalFactor?: number;
  legendFormat?: string;
  range?: boolean;
}

type PanelCommon = Omit<Panel, 'type' | 'options' | 'fieldConfig' | 'targets' | 'datasource' | 'id' | 'gridPos'> &
  Required<Pick<Panel, 'id' | 'gridPos' | 'title' | 'description'>> & {
    datasource: DatasourceVar;
    targets: PromQuery[];
  };

type TypedPanel<Type extends string, Options, Custom> = PanelCommon & {
  type: Type;
  options: Options;
  fieldConfig: FieldConfigSource<Custom>;
};

export type FacetrainPanel =
  | TypedPanel<'timeseries', TimeSeries.Options, TimeSeries.FieldConfig>
  | TypedPanel<'stat', Stat.Options, never>
  | TypedPanel<'bargauge', BarGauge.Options, never>
  | TypedPanel<'piechart', PieChart.Options, PieChart.FieldConfig>
  | TypedPanel<'table', Table.Options, Table.FieldConfig>;

export interface FacetrainRow extends Omit<RowPanel, 'panels'> {
  panels: FacetrainPanel[];
}

/** Built-in "Annotations & Alerts" or a Prometheus annotation on `${datasource}`. */
export type FacetrainAnnotation =
  | (AnnotationQuery & { builtIn: 1; datasource: { type: 'grafana'; uid: '-- Grafana --' } })
  | (Omit<AnnotationQuery<PromQuery>, 'datasource'> & {
      datasource: DatasourceVar;
      target: PromQuery;
      // Prometheus-plugin annotation fields, not modelled by the core schema.
      tagKeys?: string;
      textFormat?: string;
      titleFormat?: string;
      useValueForTime?: boolean;
    });

export type FacetrainVariable =
  | (VariableModel & { type: 'datasource'; query: 'prometheus' })
  | (Omit<VariableModel, 'datasource'> & { type: 'query'; datasource: DatasourceVar });

export interface FacetrainDashboard
  extends Omit<Dashboard, 'panels' | 'templating' | 'annotations' | 'uid' | 'title' | 'id'> {
  id: null;
  uid: string;
  title: string;
  annotations: { list: FacetrainAnnotation[] };
  panels: Array<FacetrainPanel | FacetrainRow>;
  templating: { list: FacetrainVariable[] };
}

export type { Dashboard };
