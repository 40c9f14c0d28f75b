using System.ClientModel;
using Microsoft.SemanticKernel;

namespace ChatStack.ChatApi.Agent;

/// <summary>
/// What a client is told when a model call fails: enough to act on (retry later, shorten the request, tell the
/// operator). The provider's own words about this server's key, model or endpoint go to the log only: an
/// "Incorrect API key provided: sk-…abcd" is not the chat user's business.
/// </summary>
internal static class ModelFailure
{
    public static string Describe(Exception failure)
    {
        var chain = Chain(failure).ToList();
        var status = chain.Select(Status).FirstOrDefault(s => s > 0);
        return status switch
        {
            401 or 403 => $"The model provider refused this server's credentials (HTTP {status}). That is a configuration problem on our side; it has been logged.",
            404 => "The model provider does not know the configured model or endpoint (HTTP 404). That is a configuration problem on our side; it has been logged.",
            408 or 429 => $"The model provider is busy or limiting this server's requests (HTTP {status}); try again shortly.",
            >= 500 => $"The model provider failed (HTTP {status}); try again shortly.",
            >= 400 => $"The model provider refused the request (HTTP {status}): {ProviderMessage(chain)}",
            _ when chain.Any(e => e is TimeoutException or TaskCanceledException) => "The model provider did not answer in time; try again shortly.",
            _ when chain.Any(e => e is HttpRequestException) => "The model provider could not be reached; try again shortly.",
            _ => "The model call failed; it has been logged.",
        };
    }

    private static IEnumerable<Exception> Chain(Exception failure)
    {
        for (var e = failure; e is not null; e = e.InnerException)
        {
            yield return e;
        }
    }

    // The OpenAI client reports the provider's status on ClientResultException; Semantic Kernel wraps it in
    // HttpOperationException. Status 0 is a request that never got an answer.
    private static int Status(Exception e) => e switch
    {
        ClientResultException result => result.Status,
        HttpOperationException { StatusCode: { } code } => (int)code,
        _ => 0,
    };

    // A 4xx other than the ones above is about the request itself (context length, content filter, a bad parameter):
    // the provider's explanation, after its first line ("HTTP 400 (type: code)"), helps the client.
    private static string ProviderMessage(IReadOnlyList<Exception> chain)
    {
        var message = chain.OfType<ClientResultException>().FirstOrDefault()?.Message ?? chain[0].Message;
        var explanation = message.Split("\n\n", 2) is [_, var rest] ? rest : message;
        explanation = explanation.ReplaceLineEndings(" ").Trim();
        return explanation.Length <= 300 ? explanation : explanation[..297] + "...";
    }
}
