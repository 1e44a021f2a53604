using System.Globalization;
using System.Text.Json;

namespace Ferry.Bench.Harness;

/// <summary>One table cell: the text shown in the readable table and, for numbers, the raw value put in JSON.</summary>
public readonly record struct Cell(string Text, double? Number)
{
    public static Cell Num(double value, string format) =>
        new(double.IsNaN(value) ? "-" : value.ToString(format, CultureInfo.InvariantCulture), double.IsNaN(value) ? null : value);

    public static implicit operator Cell(string text) => new(text, null);
}

/// <summary>A titled table of results; rows are added as measurements finish.</summary>
public sealed class ResultTable(string title, string[] columns)
{
    public string Title { get; } = title;
    public string[] Columns { get; } = columns;
    public List<Cell[]> Rows { get; } = [];
    public List<string> Notes { get; } = [];

    public void Row(params Cell[] cells)
    {
        if (cells.Length != Columns.Length) throw new ArgumentException($"{Title}: {cells.Length} cells for {Columns.Length} columns");
        Rows.Add(cells);
    }

    public void Note(string text) => Notes.Add(text);
}

/// <summary>
/// The output of one stopwatch benchmark: readable tables on stdout as each one completes (default), or one JSON
/// document at the end (--json). Progress goes to stderr either way, so stdout stays parseable.
/// </summary>
public sealed class Report(string benchmark, bool json)
{
    private readonly List<ResultTable> tables = [];
    private readonly List<string> notes = [];
    private readonly string loadAtStart = Machine.LoadAverage();
    private readonly DateTime started = DateTime.UtcNow;

    public bool Json { get; } = json;

    public static void Progress(string text) => Console.Error.WriteLine($"[{DateTime.Now:HH:mm:ss} load {Machine.LoadAverage()}] {text}");

    public void Note(string text)
    {
        notes.Add(text);
        if (!Json) Console.WriteLine($"# {text}");
    }

    /// <summary>Adds a finished table (printed at once in table mode).</summary>
    public void Add(ResultTable table)
    {
        tables.Add(table);
        if (!Json) PrintTable(table);
    }

    public void Finish()
    {
        if (Json) WriteJson();
        else Console.WriteLine($"# load average at start {loadAtStart}, at end {Machine.LoadAverage()}; {(DateTime.UtcNow - started).TotalSeconds:F0} s");
    }

    private static void PrintTable(ResultTable t)
    {
        var widths = new int[t.Columns.Length];
        for (var c = 0; c < widths.Length; c++) widths[c] = t.Columns[c].Length;
        foreach (var row in t.Rows)
        {
            for (var c = 0; c < widths.Length; c++) widths[c] = Math.Max(widths[c], row[c].Text.Length);
        }
        Console.WriteLine();
        Console.WriteLine($"## {t.Title}");
        Console.WriteLine(Line(t.Columns, widths));
        Console.WriteLine(string.Join("  ", widths.Select(w => new string('-', w))));
        foreach (var row in t.Rows) Console.WriteLine(Line(row.Select(r => r.Text).ToArray(), widths));
        foreach (var n in t.Notes) Console.WriteLine($"  {n}");
    }

    // Text left-aligned in the first column, right-aligned (numbers) elsewhere.
    private static string Line(string[] cells, int[] widths) =>
        string.Join("  ", cells.Select((s, i) => i == 0 ? s.PadRight(widths[i]) : s.PadLeft(widths[i])));

    private void WriteJson()
    {
        using var stdout = Console.OpenStandardOutput();
        using var w = new Utf8JsonWriter(stdout, new JsonWriterOptions { Indented = true, Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping });
        w.WriteStartObject();
        w.WriteString("benchmark", benchmark);
        w.WriteString("started", started.ToString("O", CultureInfo.InvariantCulture));
        w.WriteString("machine", Machine.Describe());
        w.WriteString("loadavg_start", loadAtStart);
        w.WriteString("loadavg_end", Machine.LoadAverage());
        w.WriteNumber("seconds", Math.Round((DateTime.UtcNow - started).TotalSeconds, 1));
        WriteStrings(w, "notes", notes);
        w.WriteStartArray("tables");
        foreach (var t in tables)
        {
            w.WriteStartObject();
            w.WriteString("title", t.Title);
            WriteStrings(w, "notes", t.Notes);
            w.WriteStartArray("rows");
            foreach (var row in t.Rows)
            {
                w.WriteStartObject();
                for (var c = 0; c < row.Length; c++)
                {
                    if (row[c].Number is { } v) w.WriteNumber(t.Columns[c], v);
                    else w.WriteString(t.Columns[c], row[c].Text);
                }
                w.WriteEndObject();
            }
            w.WriteEndArray();
            w.WriteEndObject();
        }
        w.WriteEndArray();
        w.WriteEndObject();
        w.Flush();
        stdout.WriteByte((byte)'\n');
    }

    private static void WriteStrings(Utf8JsonWriter w, string name, List<string> items)
    {
        w.WriteStartArray(name);
        foreach (var s in items) w.WriteStringValue(s);
        w.WriteEndArray();
    }
}
