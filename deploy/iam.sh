#!/usr/bin/env bash
# Service accounts and least-privilege IAM for ChatStack on Google Cloud (see deploy/README.md).
#
#   deploy/iam.sh accounts    before the first deploy: the three service accounts, their project-level roles,
#                             access to the three secrets
#   deploy/iam.sh resources   after the provisioner job has run once: roles on the topic, the subscription and
#                             the dataset it created, and Pub/Sub's own service agent for dead-lettering
#
# Reads GCP_PROJECT_ID and BIGQUERY_LOCATION (the AppHost's parameters gcp-project-id, bigquery-location).
set -euo pipefail

: "${GCP_PROJECT_ID:?set GCP_PROJECT_ID (the AppHost parameter gcp-project-id)}"
BIGQUERY_LOCATION=${BIGQUERY_LOCATION:-US}
project=$GCP_PROJECT_ID

sa() { echo "$1@$project.iam.gserviceaccount.com"; }

# Runs a grant to an account that may have just been created. A new account can take up to about a minute to be
# usable in IAM policies; until then the grant fails with "Service account ... does not exist". That error is retried
# every 10 s for up to 90 s; any other fails at once. Grants are idempotent, so a retry or a second run is harmless.
grant() {
  local attempt=1 error
  until error=$("$@" 2>&1 >/dev/null); do
    if [ "$attempt" -ge 10 ] || ! grep -qi 'service account .*does not exist' <<<"$error"; then
      echo "$error" >&2
      return 1
    fi
    echo "deploy/iam.sh: waiting for the new service account to be usable (attempt $attempt)" >&2
    attempt=$((attempt + 1))
    sleep 10
  done
  [ -z "$error" ] || echo "$error" >&2
}

accounts() {
  for name in chat-api analytics-worker provisioner; do
    gcloud iam service-accounts describe "$(sa "$name")" --project "$project" >/dev/null 2>&1 \
      || gcloud iam service-accounts create "$name" --project "$project" --display-name "ChatStack $name"
  done

  # The chat API keeps sessions and messages in Firestore (no narrower scope than the project without IAM conditions).
  grant gcloud projects add-iam-policy-binding "$project" --condition=None \
    --member "serviceAccount:$(sa chat-api)" --role roles/datastore.user

  # Only the provisioner job administers anything: it creates and updates topics, subscriptions, the dataset,
  # tables and views, and Firestore's composite index. It sets no IAM policy, so it needs neither pubsub.admin nor
  # bigquery.admin, and no access to documents (datastore.indexAdmin).
  grant gcloud projects add-iam-policy-binding "$project" --condition=None \
    --member "serviceAccount:$(sa provisioner)" --role roles/pubsub.editor
  grant gcloud projects add-iam-policy-binding "$project" --condition=None \
    --member "serviceAccount:$(sa provisioner)" --role roles/bigquery.dataOwner
  grant gcloud projects add-iam-policy-binding "$project" --condition=None \
    --member "serviceAccount:$(sa provisioner)" --role roles/datastore.indexAdmin

  for secret in openai-api-key chat-api-jwt-signing-key chat-api-content-hash-key; do
    grant gcloud secrets add-iam-policy-binding "$secret" --project "$project" \
      --member "serviceAccount:$(sa chat-api)" --role roles/secretmanager.secretAccessor
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
