// Drives the ChatStack BigQuery emulator with Google's own Node.js client, as `bq`-style tools would.
// Usage: node script.mjs http://127.0.0.1:PORT   — prints one JSON line of observations for the .NET test.
import { BigQuery } from '@google-cloud/bigquery';

const endpoint = process.argv[2];
if (!endpoint) {
  console.error('usage: node script.mjs <emulator endpoint>');
  process.exit(2);
}
const projectId = 'node-check';
// An auth client that adds no credentials, so nothing ever calls Google.
const noCredentials = {
  getRequestHeaders: async () => new Headers(),
  getProjectId: async () => projectId,
};
const bigquery = new BigQuery({ projectId, apiEndpoint: endpoint, authClient: noCredentials, autoRetry: false });

const datasetId = `node_${process.pid}_${Date.now()}`;
const [dataset] = await bigquery.createDataset(datasetId);
const [table] = await dataset.createTable('events', {
  schema: {
    fields: [
      { name: 'id', type: 'STRING', mode: 'REQUIRED' },
      { name: 'n', type: 'INTEGER' },
      { name: 'ts', type: 'TIMESTAMP' },
      { name: 'amount', type: 'NUMERIC' },
      { name: 'tags', type: 'STRING', mode: 'REPEATED' },
      { name: 'meta', type: 'RECORD', fields: [{ name: 'model', type: 'STRING' }] },
    ],
  },
  timePartitioning: { type: 'DAY', field: 'ts' },
  clustering: { fields: ['id'] },
});
const [metadata] = await table.getMetadata();

await table.insert([
  { id: 'a', n: 1, ts: '2024-01-01T00:00:00.250Z', amount: '1.5', tags: ['x', 'y'], meta: { model: 'm1' } },
  { id: 'b', n: 2, ts: '2024-01-02T00:00:00Z', amount: '2.25', tags: [], meta: { model: 'm2' } },
]);

let partialFailure = null;
try {
  await table.insert([{ id: 'c', n: 3 }, { id: 'd', nope: true }]);
} catch (error) {
  partialFailure = {
    name: error.name,
    reasons: error.errors.map((e) => ({ id: e.row.id, reasons: e.errors.map((x) => x.reason) })),
  };
}

let duplicate = null;
try {
  await bigquery.createDataset(datasetId);
} catch (error) {
  duplicate = { code: error.code, reason: error.errors?.[0]?.reason };
}

const [rows] = await bigquery.query({
  query: `SELECT id, n, ts, amount, ARRAY_LENGTH(tags) AS tag_count, meta.model AS model
          FROM \`${projectId}.${datasetId}.events\` WHERE n >= @min ORDER BY n`,
  params: { min: 1 },
  useLegacySql: false,
});

const [job] = await bigquery.createQueryJob({
  query: 'SELECT x, x * 2 AS twice FROM UNNEST(GENERATE_ARRAY(1, 30)) AS x ORDER BY x',
  useLegacySql: false,
});
const [jobRows] = await job.getQueryResults({ maxResults: 7 });
const [jobMetadata] = await job.getMetadata();

let invalidQuery = null;
try {
  await bigquery.query({ query: 'SELECT FROM WHERE', useLegacySql: false });
} catch (error) {
  invalidQuery = { code: error.code, reason: error.errors?.[0]?.reason };
}

console.log(JSON.stringify({
  table: { type: metadata.type, partitionField: metadata.timePartitioning?.field, clustering: metadata.clustering?.fields },
  rows: rows.map((r) => ({ id: r.id, n: r.n, ts: r.ts.value, amount: r.amount.toString(), tagCount: r.tag_count, model: r.model })),
  partialFailure,
  duplicate,
  jobRowCount: jobRows.length,
  jobLastTwice: jobRows[jobRows.length - 1]?.twice,
  jobState: jobMetadata.status?.state,
  invalidQuery,
}));
