using System.Text;

namespace Ferry.Wasi.Tests;

/// <summary>`ferry run` with WASI modules, through the real CLI (ferry.dll run with dotnet).</summary>
public sealed class CliTests
{
    private const string Echo = """
        #include <stdio.h>
        #include <stdlib.h>
        #include <string.h>
        #include <ctype.h>
        int main(int argc, char **argv) {
          for (int i = 0; i < argc; i++) printf("argv[%d]=%s\n", i, argv[i]);
          printf("GREETING=%s\n", getenv("GREETING") ? getenv("GREETING") : "(unset)");
          int c;
          while ((c = getchar()) != EOF) putchar(toupper(c));
          FILE *f = fopen("/data/note.txt", "w");
          if (!f) { perror("fopen"); return 3; }
          fputs("written by the guest\n", f);
          fclose(f);
          fprintf(stderr, "to stderr\n");
          return argc > 1 ? atoi(argv[argc - 1]) : 0;
        }
        """;

    private const string Trap = """
        #include <stdio.h>
        __attribute__((noinline)) void deep_failure(int x) { if (x > 0) __builtin_trap(); }
        __attribute__((noinline)) void caller_of_failure(int x) { deep_failure(x); puts("not reached"); }
        int main(int argc, char **argv) {
          printf("before the trap\n");
          fflush(stdout);
          caller_of_failure(argc);
          return 0;
        }
        """;

    [Fact]
    public void Stdio_args_env_preopen_and_exit_code_pass_through()
    {
        using var dir = new TempDir();
        var wasm = Env.CompileC(Echo);
        var r = Env.Ferry(["run", "--env", "GREETING=hi there", "--dir", $"{dir.Path}::/data", wasm, "-x", "--flag", "7"],
            stdin: Encoding.UTF8.GetBytes("some input\nline two"));
        Assert.Equal(7, r.ExitCode);
        Assert.Equal($"argv[0]={Path.GetFileName(wasm)}\nargv[1]=-x\nargv[2]=--flag\nargv[3]=7\nGREETING=hi there\nSOME INPUT\nLINE TWO", r.Out);
        Assert.Equal("to stderr\n", r.Stderr);
        Assert.Equal("written by the guest\n", File.ReadAllText(dir["note.txt"]));
    }

    [Fact]
    public void A_missing_preopen_fails_inside_the_guest_not_the_host()
    {
        var r = Env.Ferry(["run", Env.CompileC(Echo)], stdin: []);
        Assert.Equal(3, r.ExitCode);
        Assert.Contains("fopen", r.Stderr);
    }

    [Fact]
    public void A_trap_prints_the_message_and_a_named_backtrace_and_exits_134_after_flushing_output()
    {
        // -g keeps the name section, as a debug build would.
        var r = Env.Ferry(["run", Env.CompileC(Trap, "-g")]);
        Assert.Equal(134, r.ExitCode);
        Assert.Equal("before the trap\n", r.Out);
        Assert.Contains("wasm trap: unreachable", r.Stderr);
        var lines = r.Stderr.Split('\n');
        var bt = Array.FindIndex(lines, l => l.Contains("wasm backtrace"));
        Assert.True(bt >= 0, r.Stderr);
        Assert.Contains("deep_failure", lines[bt + 1]);
        Assert.Contains(lines, l => l.Contains("__main_argc_argv") || l.Contains("main"));
    }

    [Theory]
    [InlineData("--dir", "/definitely/not/here")]
    [InlineData("--env", "=novalue")]
    [InlineData("--bogus", "x")]
    public void Bad_flags_exit_2_with_a_message(string flag, string value)
    {
        var r = Env.Ferry(["run", flag, value, Env.CompileC(Echo)], stdin: []);
        Assert.Equal(2, r.ExitCode);
        Assert.Contains("ferry", r.Stderr);
        Assert.Equal("", r.Out);
    }

    [Fact]
    public void Proc_exit_code_is_the_process_exit_code_and_stdout_is_not_lost()
    {
        const string exit = """
            #include <stdio.h>
            #include <stdlib.h>
            int main(void) { for (int i = 0; i < 20000; i++) printf("line %d\n", i); exit(42); }
            """;
        var r = Env.Ferry(["run", Env.CompileC(exit)]);
        Assert.Equal(42, r.ExitCode);
        var lines = r.Out.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(20000, lines.Length);
        Assert.Equal("line 19999", lines[^1]);
    }

    [Fact]
    public void Invoke_still_works_for_plain_modules()
    {
        using var dir = new TempDir();
        var wasm = dir["add.wasm"];
        File.WriteAllBytes(wasm, Env.Wat("(module (func (export \"add\") (param i32 i32) (result i32) (i32.add (local.get 0) (local.get 1))))"));
        var r = Env.Ferry(["run", "--invoke", "add", wasm, "2", "40"]);
        Assert.Equal(0, r.ExitCode);
        Assert.Equal("42\n", r.Out);
    }
}
