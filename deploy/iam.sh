#!/usr/bin/env bash
# Service accounts and least-privilege IAM for ChatStack on Google Cloud (see deploy/README.md).
#
#   deploy/iam.sh accounts    before the first deploy: the three service accounts, their project-level roles,
#                             access to the two secrets
#   deploy/iam.sh resources   after the provisioner job has run once: roles on the topic, the subscription and
#                             the dataset it created, and Pub/Sub's own service agent for dead-lettering
#
# Reads GCP_PROJECT_ID and BIGQUERY_LOCATION (the AppHost's parameters gcp-project-id, bigquery-location).
set -euo pipefail

: "${GCP_PROJECT_ID:?set GCP_PROJECT_ID (the AppHost parameter gcp-project-id)}"
BIGQUERY_LOCATION=${BIGQUERY_LOCATION:-US}
project=$GCP_PROJECT_ID

sa() { echo "$1@$project.iam.gserviceaccount.com"; }

accounts() {
  for name in chat-api analytics-worker provisioner; do
    gcloud iam service-accounts describe "$(sa "$name")" --project "$project" >/dev/null 2>&1 \
      || gcloud iam service-accounts create "$name" --project "$project" --display-name "ChatStack $name"
  done

  # The chat API keeps sessions and messages in Firestore (no narrower scope than the project without IAM conditions).
  gcloud projects add-iam-policy-binding "$project" --condition=None \
    --member "serviceAccount:$(sa chat-api)" --role roles/datastore.user >/dev/null

  # Only the provisioner job administers anything: it creates and updates topics, subscriptions, the dataset,
  # tables and views, and Firestore's composite index. It sets no IAM policy, so it needs neither pubsub.admin nor
  # bigquery.admin, and no access to documents (datastore.indexAdmin).
  gcloud projects add-iam-policy-binding "$project" --condition=None \
    --member "serviceAccount:$(sa provisioner)" --role roles/pubsub.editor >/dev/null
  gcloud projects add-iam-policy-binding "$project" --condition=None \
    --member "serviceAccount:$(sa provisioner)" --role roles/bigquery.dataOwner >/dev/null
  gcloud projects add-iam-policy-binding "$project" --condition=None \
    --member "serviceAccount:$(sa provisioner)" --role roles/datastore.indexAdmin >/dev/null

  for secret in openai-api-key chat-api-jwt-signing-key; do
    gcloud secrets add-iam-policy-binding "$secret" --project "$project" \
      --member "serviceAccount:$(sa chat-api)" --role roles/secretmanager.secretAccessor >/dev/null
  done
}

resources() {
  # The chat API publishes chat events; the worker pulls them and writes rows (tabledata.insertAll runs no query
  # job, so no bigquery.jobUser).
  gcloud pubsub topics add-iam-policy-binding chat-events --project "$project" \
    --member "serviceAccount:$(sa chat-api)" --role roles/pubsub.publisher >/dev/null
  gcloud pubsub subscriptions add-iam-policy-binding chat-events-to-bq --project "$project" \
    --member "serviceAccount:$(sa analytics-worker)" --role roles/pubsub.subscriber >/dev/null
  bq query --project_id "$project" --location "$BIGQUERY_LOCATION" --nouse_legacy_sql \
    "GRANT \`roles/bigquery.dataEditor\` ON SCHEMA \`$project\`.chat_analytics TO \"serviceAccount:$(sa analytics-worker)\"" >/dev/null

  # Dead-lettering is done by Pub/Sub's service agent: it must publish to the dead-letter topic and acknowledge
  # the messages it forwards from the source subscription.
  number=$(gcloud projects describe "$project" --format 'value(projectNumber)')
  agent="serviceAccount:service-$number@gcp-sa-pubsub.iam.gserviceaccount.com"
  gcloud pubsub topics add-iam-policy-binding chat-events-dlq --project "$project" \
    --member "$agent" --role roles/pubsub.publisher >/dev/null
  gcloud pubsub subscriptions add-iam-policy-binding chat-events-to-bq --project "$project" \
    --member "$agent" --role roles/pubsub.subscriber >/dev/null
}

case "${1:-}" in
  accounts) accounts ;;
  resources) resources ;;
  *) echo "usage: $0 accounts|resources" >&2; exit 64 ;;
esac
echo "IAM ($1) is set for project $project."
