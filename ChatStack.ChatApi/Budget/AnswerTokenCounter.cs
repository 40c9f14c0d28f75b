using ChatStack.Tokenization;

namespace ChatStack.ChatApi.Budget;

/// <summary>
/// The token count of one model call's answer as it streams: exact (ChatStack.Tokenization's incremental counter
/// over the run's own answer text, the same total as counting the final text once, at linear cost), counted only
/// when a checkpoint is due or the budget may have been reached (<see cref="CountGate"/>). Inside one long unbroken
/// piece, deltas are held back and shown by the count that covers them, so the text shown is never past the budget.
/// </summary>
internal sealed class AnswerTokenCounter
{
    /// <summary>Longest a held delta waits for the count that shows it: a slow model's long run still reads as it streams.</summary>
    public static readonly TimeSpan MaxHold = TimeSpan.FromSeconds(1);

    private readonly CountGate _gate;
    private readonly AnswerText _answer;
    private readonly int _start;

    /// <summary>Counts what is appended to <paramref name="answer"/> from now on (a new text when none is given).</summary>
    public AnswerTokenCounter(ITokenCounter counter, AnswerText? answer = null, TimeProvider? clock = null)
    {
        _gate = new CountGate(counter.CreateIncrementalCounter(), clock ?? TimeProvider.System, MaxHold);
        _answer = answer ?? new AnswerText();
        _start = _answer.Length;
    }

    /// <summary>Whether the answer was cut back to where a held delta reached the budget.</summary>
    public bool Cut { get; private set; }

    /// <summary>Whether a count is due for a checkpoint or a limit of this call's text (<see cref="CountGate.CountDue"/>).</summary>
    public bool CountDue(int checkpoint, int limit) => _gate.CountDue(_answer.Length - _start, checkpoint, limit);

    /// <summary>Appends a delta without counting it; true when it may be shown now, false when a later count shows it.</summary>
    public bool Add(ReadOnlySpan<char> delta)
    {
        _answer.Append(delta);
        return _gate.Appended(delta, _answer.Length - _start);
    }

    /// <summary>
    /// The exact token count of this call's text so far, cut back when held deltas reached <paramref name="limit"/>;
    /// <paramref name="released"/> is the held text this count lets the caller show (empty outside long runs).
    /// </summary>
    public int Count(int limit, out ReadOnlySpan<char> released)
    {
        int shown = _gate.Shown(_answer.Length - _start);
        var (length, tokens) = _gate.Count(_answer.AsSpan(_start), limit);
        if (_start + length < _answer.Length)
        {
            _answer.Truncate(_start + length);
            Cut = true;
        }

        released = _answer.AsSpan(_start + shown)[..(length - shown)];
        return tokens;
    }

    /// <summary>The exact token count of this call's text so far (no limit: nothing is cut).</summary>
    public int Count() => Count(int.MaxValue, out _);

    /// <summary>Appends a delta and returns the exact token count of this call's text so far.</summary>
    public int Append(ReadOnlySpan<char> delta)
    {
        Add(delta);
        return Count(int.MaxValue, out _);
    }
}
