using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Serialization.Metadata;
using ChatStack.GoogleCloud.BigQuery;

namespace ChatStack.BigQueryEmulator.Apis;

internal static class Json
{
    // BigQuery writes quotes and '+' as themselves, not \u0022 and \u002B as the default encoder would.
    public static readonly BigQueryJsonContext Context = new(new JsonSerializerOptions(BigQueryJsonContext.Default.Options)
    {
        Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    });

    public static IResult Ok<T>(T value, JsonTypeInfo<T> typeInfo) =>
        Results.Json(value, typeInfo, "application/json; charset=UTF-8");
}
