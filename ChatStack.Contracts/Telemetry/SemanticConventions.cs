namespace ChatStack.Contracts.Telemetry;

/// <summary>
/// OpenTelemetry GenAI semantic-convention names ChatStack emits (development status; the version that matches
/// semantic-conventions-genai as of late 2026). One place, so the API, the worker and the tests agree.
/// </summary>
public static class GenAiAttributes
{
    public const string OperationName = "gen_ai.operation.name";
    public const string ProviderName = "gen_ai.provider.name";
    public const string AgentName = "gen_ai.agent.name";
    public const string ConversationId = "gen_ai.conversation.id";
    public const string RequestModel = "gen_ai.request.model";
    public const string RequestMaxTokens = "gen_ai.request.max_tokens";
    public const string ResponseModel = "gen_ai.response.model";
    public const string ResponseId = "gen_ai.response.id";
    public const string ResponseFinishReasons = "gen_ai.response.finish_reasons";
    public const string UsageInputTokens = "gen_ai.usage.input_tokens";
    public const string UsageOutputTokens = "gen_ai.usage.output_tokens";
    public const string TokenType = "gen_ai.token.type";
    public const string ToolName = "gen_ai.tool.name";
    public const string ToolType = "gen_ai.tool.type";
    public const string ToolCallId = "gen_ai.tool.call.id";

    /// <summary>Opt-in content attributes: set only when <see cref="GenAiContentCapture.Variable"/> is true.</summary>
    public const string InputMessages = "gen_ai.input.messages";
    public const string OutputMessages = "gen_ai.output.messages";
    public const string ToolCallArguments = "gen_ai.tool.call.arguments";
    public const string ToolCallResult = "gen_ai.tool.call.result";

    public const string ErrorType = "error.type";
    public const string ServerAddress = "server.address";
    public const string ServerPort = "server.port";

    /// <summary>Well-known <c>gen_ai.operation.name</c> values.</summary>
    public static class Operations
    {
        public const string Chat = "chat";
        public const string InvokeAgent = "invoke_agent";
        public const string ExecuteTool = "execute_tool";
    }

    /// <summary>
    /// <c>gen_ai.provider.name</c>: <c>openai</c> for every OpenAI-compatible endpoint (the wire format), and
    /// ChatStack's own name for the deterministic offline stand-in, which is no provider at all.
    /// </summary>
    public static class Providers
    {
        public const string OpenAi = "openai";
        public const string Offline = "chatstack.offline";
    }

    public static class TokenTypes
    {
        public const string Input = "input";
        public const string Output = "output";
    }
}

/// <summary>GenAI client metric names, units and the bucket boundaries the conventions advise.</summary>
public static class GenAiMetrics
{
    public const string TokenUsage = "gen_ai.client.token.usage";
    public const string OperationDuration = "gen_ai.client.operation.duration";
    public const string TimeToFirstChunk = "gen_ai.client.operation.time_to_first_chunk";

    public static readonly IReadOnlyList<long> TokenUsageBuckets =
        [1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864];

    public static readonly IReadOnlyList<double> DurationBuckets =
        [0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92];
}

/// <summary>
/// The switch for message content in telemetry and chat events. Off unless set to <c>true</c>: prompts, answers,
/// tool arguments and results are personal data.
/// </summary>
public static class GenAiContentCapture
{
    public const string Variable = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT";
}

/// <summary>Messaging and database semantic-convention names for the Pub/Sub, Firestore and BigQuery spans.</summary>
public static class MessagingAttributes
{
    public const string System = "messaging.system";
    public const string SystemPubSub = "gcp_pubsub";
    public const string DestinationName = "messaging.destination.name";
    public const string OperationType = "messaging.operation.type";
    public const string OperationName = "messaging.operation.name";
    public const string BatchMessageCount = "messaging.batch.message_count";
    public const string MessageId = "messaging.message.id";
    public const string SubscriptionName = "messaging.destination.subscription.name";
    public const string DeliveryAttempt = "messaging.gcp_pubsub.message.delivery_attempt";
}

public static class DbAttributes
{
    public const string SystemName = "db.system.name";
    public const string Namespace = "db.namespace";
    public const string CollectionName = "db.collection.name";
    public const string OperationName = "db.operation.name";
    public const string BatchSize = "db.operation.batch.size";
    public const string Firestore = "gcp.firestore";
    public const string BigQuery = "gcp.bigquery";
}
