using System.Collections.Frozen;

namespace Ferry.Wasm.Binary;

/// <summary>The immediate operands an instruction carries in the binary format.</summary>
public enum Immediate : byte
{
    None,
    BlockType,
    Label,
    BrTable,
    Function,
    CallIndirect,
    Local,
    Global,
    Table,
    MemArg,
    Memory,
    I32,
    I64,
    F32,
    F64,
    V128,
    SelectTyped,
    RefType,
    MemoryInit,
    Data,
    MemoryCopy,
    TableInit,
    Element,
    TableCopy,
    Lane,
    Shuffle,
    MemArgLane,
}

/// <summary>Static facts about one opcode.</summary>
/// <param name="Pops">For "simple" instructions: operand types popped, in push order. Null when typing is special.</param>
/// <param name="Pushes">For simple instructions: result types. Null when typing is special.</param>
/// <param name="AccessSize">For memory instructions: bytes accessed; for lane instructions: the number of lanes; 0 otherwise.</param>
public sealed record OpInfo(int Code, string Name, Immediate Immediate, ValueType[]? Pops, ValueType[]? Pushes, int AccessSize)
{
    public bool IsSimple => Pops is not null;
}

/// <summary>
/// Opcode numbering used throughout the engine: single-byte opcodes keep their byte value, 0xFC-prefixed
/// ones are 0x100 + sub-opcode, 0xFD-prefixed (SIMD) ones 0x200 + sub-opcode. Dense, so tables are arrays.
/// </summary>
public static class Opcodes
{
    public const int MiscBase = 0x100;
    public const int SimdBase = 0x200;
    public const int TableSize = 0x300;

    private static readonly OpInfo?[] Table = Build();
    private static FrozenDictionary<string, OpInfo>? byName;

    public static OpInfo? Get(int code) => (uint)code < TableSize ? Table[code] : null;

    public static OpInfo? ByName(string name)
    {
        byName ??= Table.Where(o => o is not null).ToFrozenDictionary(o => o!.Name, o => o!);
        return byName.GetValueOrDefault(name);
    }

    // Text definitions: "code name immediate signature [size]". Signature letters: i=i32 l=i64 f=f32 d=f64
    // v=v128 a=address (i32, or i64 for a 64-bit memory); "-" marks instructions whose typing is special.
    // A trailing number is the byte width of a memory access.
    private const string Definitions = """
        00 unreachable None -
        01 nop None :
        02 block BlockType -
        03 loop BlockType -
        04 if BlockType -
        05 else None -
        0b end None -
        0c br Label -
        0d br_if Label -
        0e br_table BrTable -
        0f return None -
        10 call Function -
        11 call_indirect CallIndirect -
        1a drop None -
        1b select None -
        1c select SelectTyped -
        20 local.get Local -
        21 local.set Local -
        22 local.tee Local -
        23 global.get Global -
        24 global.set Global -
        25 table.get Table -
        26 table.set Table -
        28 i32.load MemArg a:i 4
        29 i64.load MemArg a:l 8
        2a f32.load MemArg a:f 4
        2b f64.load MemArg a:d 8
        2c i32.load8_s MemArg a:i 1
        2d i32.load8_u MemArg a:i 1
        2e i32.load16_s MemArg a:i 2
        2f i32.load16_u MemArg a:i 2
        30 i64.load8_s MemArg a:l 1
        31 i64.load8_u MemArg a:l 1
        32 i64.load16_s MemArg a:l 2
        33 i64.load16_u MemArg a:l 2
        34 i64.load32_s MemArg a:l 4
        35 i64.load32_u MemArg a:l 4
        36 i32.store MemArg ai: 4
        37 i64.store MemArg al: 8
        38 f32.store MemArg af: 4
        39 f64.store MemArg ad: 8
        3a i32.store8 MemArg ai: 1
        3b i32.store16 MemArg ai: 2
        3c i64.store8 MemArg al: 1
        3d i64.store16 MemArg al: 2
        3e i64.store32 MemArg al: 4
        3f memory.size Memory :a
        40 memory.grow Memory a:a
        41 i32.const I32 :i
        42 i64.const I64 :l
        43 f32.const F32 :f
        44 f64.const F64 :d
        45 i32.eqz None i:i
        46 i32.eq None ii:i
        47 i32.ne None ii:i
        48 i32.lt_s None ii:i
        49 i32.lt_u None ii:i
        4a i32.gt_s None ii:i
        4b i32.gt_u None ii:i
        4c i32.le_s None ii:i
        4d i32.le_u None ii:i
        4e i32.ge_s None ii:i
        4f i32.ge_u None ii:i
        50 i64.eqz None l:i
        51 i64.eq None ll:i
        52 i64.ne None ll:i
        53 i64.lt_s None ll:i
        54 i64.lt_u None ll:i
        55 i64.gt_s None ll:i
        56 i64.gt_u None ll:i
        57 i64.le_s None ll:i
        58 i64.le_u None ll:i
        59 i64.ge_s None ll:i
        5a i64.ge_u None ll:i
        5b f32.eq None ff:i
        5c f32.ne None ff:i
        5d f32.lt None ff:i
        5e f32.gt None ff:i
        5f f32.le None ff:i
        60 f32.ge None ff:i
        61 f64.eq None dd:i
        62 f64.ne None dd:i
        63 f64.lt None dd:i
        64 f64.gt None dd:i
        65 f64.le None dd:i
        66 f64.ge None dd:i
        67 i32.clz None i:i
        68 i32.ctz None i:i
        69 i32.popcnt None i:i
        6a i32.add None ii:i
        6b i32.sub None ii:i
        6c i32.mul None ii:i
        6d i32.div_s None ii:i
        6e i32.div_u None ii:i
        6f i32.rem_s None ii:i
        70 i32.rem_u None ii:i
        71 i32.and None ii:i
        72 i32.or None ii:i
        73 i32.xor None ii:i
        74 i32.shl None ii:i
        75 i32.shr_s None ii:i
        76 i32.shr_u None ii:i
        77 i32.rotl None ii:i
        78 i32.rotr None ii:i
        79 i64.clz None l:l
        7a i64.ctz None l:l
        7b i64.popcnt None l:l
        7c i64.add None ll:l
        7d i64.sub None ll:l
        7e i64.mul None ll:l
        7f i64.div_s None ll:l
        80 i64.div_u None ll:l
        81 i64.rem_s None ll:l
        82 i64.rem_u None ll:l
        83 i64.and None ll:l
        84 i64.or None ll:l
        85 i64.xor None ll:l
        86 i64.shl None ll:l
        87 i64.shr_s None ll:l
        88 i64.shr_u None ll:l
        89 i64.rotl None ll:l
        8a i64.rotr None ll:l
        8b f32.abs None f:f
        8c f32.neg None f:f
        8d f32.ceil None f:f
        8e f32.floor None f:f
        8f f32.trunc None f:f
        90 f32.nearest None f:f
        91 f32.sqrt None f:f
        92 f32.add None ff:f
        93 f32.sub None ff:f
        94 f32.mul None ff:f
        95 f32.div None ff:f
        96 f32.min None ff:f
        97 f32.max None ff:f
        98 f32.copysign None ff:f
        99 f64.abs None d:d
        9a f64.neg None d:d
        9b f64.ceil None d:d
        9c f64.floor None d:d
        9d f64.trunc None d:d
        9e f64.nearest None d:d
        9f f64.sqrt None d:d
        a0 f64.add None dd:d
        a1 f64.sub None dd:d
        a2 f64.mul None dd:d
        a3 f64.div None dd:d
        a4 f64.min None dd:d
        a5 f64.max None dd:d
        a6 f64.copysign None dd:d
        a7 i32.wrap_i64 None l:i
        a8 i32.trunc_f32_s None f:i
        a9 i32.trunc_f32_u None f:i
        aa i32.trunc_f64_s None d:i
        ab i32.trunc_f64_u None d:i
        ac i64.extend_i32_s None i:l
        ad i64.extend_i32_u None i:l
        ae i64.trunc_f32_s None f:l
        af i64.trunc_f32_u None f:l
        b0 i64.trunc_f64_s None d:l
        b1 i64.trunc_f64_u None d:l
        b2 f32.convert_i32_s None i:f
        b3 f32.convert_i32_u None i:f
        b4 f32.convert_i64_s None l:f
        b5 f32.convert_i64_u None l:f
        b6 f32.demote_f64 None d:f
        b7 f64.convert_i32_s None i:d
        b8 f64.convert_i32_u None i:d
        b9 f64.convert_i64_s None l:d
        ba f64.convert_i64_u None l:d
        bb f64.promote_f32 None f:d
        bc i32.reinterpret_f32 None f:i
        bd i64.reinterpret_f64 None d:l
        be f32.reinterpret_i32 None i:f
        bf f64.reinterpret_i64 None l:d
        c0 i32.extend8_s None i:i
        c1 i32.extend16_s None i:i
        c2 i64.extend8_s None l:l
        c3 i64.extend16_s None l:l
        c4 i64.extend32_s None l:l
        d0 ref.null RefType -
        d1 ref.is_null None -
        d2 ref.func Function -
        100 i32.trunc_sat_f32_s None f:i
        101 i32.trunc_sat_f32_u None f:i
        102 i32.trunc_sat_f64_s None d:i
        103 i32.trunc_sat_f64_u None d:i
        104 i64.trunc_sat_f32_s None f:l
        105 i64.trunc_sat_f32_u None f:l
        106 i64.trunc_sat_f64_s None d:l
        107 i64.trunc_sat_f64_u None d:l
        108 memory.init MemoryInit -
        109 data.drop Data -
        10a memory.copy MemoryCopy -
        10b memory.fill Memory -
        10c table.init TableInit -
        10d elem.drop Element -
        10e table.copy TableCopy -
        10f table.grow Table -
        110 table.size Table -
        111 table.fill Table -
        200 v128.load MemArg a:v 16
        201 v128.load8x8_s MemArg a:v 8
        202 v128.load8x8_u MemArg a:v 8
        203 v128.load16x4_s MemArg a:v 8
        204 v128.load16x4_u MemArg a:v 8
        205 v128.load32x2_s MemArg a:v 8
        206 v128.load32x2_u MemArg a:v 8
        207 v128.load8_splat MemArg a:v 1
        208 v128.load16_splat MemArg a:v 2
        209 v128.load32_splat MemArg a:v 4
        20a v128.load64_splat MemArg a:v 8
        20b v128.store MemArg av: 16
        20c v128.const V128 :v
        20d i8x16.shuffle Shuffle vv:v
        20e i8x16.swizzle None vv:v
        20f i8x16.splat None i:v
        210 i16x8.splat None i:v
        211 i32x4.splat None i:v
        212 i64x2.splat None l:v
        213 f32x4.splat None f:v
        214 f64x2.splat None d:v
        215 i8x16.extract_lane_s Lane v:i 16
        216 i8x16.extract_lane_u Lane v:i 16
        217 i8x16.replace_lane Lane vi:v 16
        218 i16x8.extract_lane_s Lane v:i 8
        219 i16x8.extract_lane_u Lane v:i 8
        21a i16x8.replace_lane Lane vi:v 8
        21b i32x4.extract_lane Lane v:i 4
        21c i32x4.replace_lane Lane vi:v 4
        21d i64x2.extract_lane Lane v:l 2
        21e i64x2.replace_lane Lane vl:v 2
        21f f32x4.extract_lane Lane v:f 4
        220 f32x4.replace_lane Lane vf:v 4
        221 f64x2.extract_lane Lane v:d 2
        222 f64x2.replace_lane Lane vd:v 2
        223 i8x16.eq None vv:v
        224 i8x16.ne None vv:v
        225 i8x16.lt_s None vv:v
        226 i8x16.lt_u None vv:v
        227 i8x16.gt_s None vv:v
        228 i8x16.gt_u None vv:v
        229 i8x16.le_s None vv:v
        22a i8x16.le_u None vv:v
        22b i8x16.ge_s None vv:v
        22c i8x16.ge_u None vv:v
        22d i16x8.eq None vv:v
        22e i16x8.ne None vv:v
        22f i16x8.lt_s None vv:v
        230 i16x8.lt_u None vv:v
        231 i16x8.gt_s None vv:v
        232 i16x8.gt_u None vv:v
        233 i16x8.le_s None vv:v
        234 i16x8.le_u None vv:v
        235 i16x8.ge_s None vv:v
        236 i16x8.ge_u None vv:v
        237 i32x4.eq None vv:v
        238 i32x4.ne None vv:v
        239 i32x4.lt_s None vv:v
        23a i32x4.lt_u None vv:v
        23b i32x4.gt_s None vv:v
        23c i32x4.gt_u None vv:v
        23d i32x4.le_s None vv:v
        23e i32x4.le_u None vv:v
        23f i32x4.ge_s None vv:v
        240 i32x4.ge_u None vv:v
        241 f32x4.eq None vv:v
        242 f32x4.ne None vv:v
        243 f32x4.lt None vv:v
        244 f32x4.gt None vv:v
        245 f32x4.le None vv:v
        246 f32x4.ge None vv:v
        247 f64x2.eq None vv:v
        248 f64x2.ne None vv:v
        249 f64x2.lt None vv:v
        24a f64x2.gt None vv:v
        24b f64x2.le None vv:v
        24c f64x2.ge None vv:v
        24d v128.not None v:v
        24e v128.and None vv:v
        24f v128.andnot None vv:v
        250 v128.or None vv:v
        251 v128.xor None vv:v
        252 v128.bitselect None vvv:v
        253 v128.any_true None v:i
        254 v128.load8_lane MemArgLane av:v 1
        255 v128.load16_lane MemArgLane av:v 2
        256 v128.load32_lane MemArgLane av:v 4
        257 v128.load64_lane MemArgLane av:v 8
        258 v128.store8_lane MemArgLane av: 1
        259 v128.store16_lane MemArgLane av: 2
        25a v128.store32_lane MemArgLane av: 4
        25b v128.store64_lane MemArgLane av: 8
        25c v128.load32_zero MemArg a:v 4
        25d v128.load64_zero MemArg a:v 8
        25e f32x4.demote_f64x2_zero None v:v
        25f f64x2.promote_low_f32x4 None v:v
        260 i8x16.abs None v:v
        261 i8x16.neg None v:v
        262 i8x16.popcnt None v:v
        263 i8x16.all_true None v:i
        264 i8x16.bitmask None v:i
        265 i8x16.narrow_i16x8_s None vv:v
        266 i8x16.narrow_i16x8_u None vv:v
        267 f32x4.ceil None v:v
        268 f32x4.floor None v:v
        269 f32x4.trunc None v:v
        26a f32x4.nearest None v:v
        26b i8x16.shl None vi:v
        26c i8x16.shr_s None vi:v
        26d i8x16.shr_u None vi:v
        26e i8x16.add None vv:v
        26f i8x16.add_sat_s None vv:v
        270 i8x16.add_sat_u None vv:v
        271 i8x16.sub None vv:v
        272 i8x16.sub_sat_s None vv:v
        273 i8x16.sub_sat_u None vv:v
        274 f64x2.ceil None v:v
        275 f64x2.floor None v:v
        276 i8x16.min_s None vv:v
        277 i8x16.min_u None vv:v
        278 i8x16.max_s None vv:v
        279 i8x16.max_u None vv:v
        27a f64x2.trunc None v:v
        27b i8x16.avgr_u None vv:v
        27c i16x8.extadd_pairwise_i8x16_s None v:v
        27d i16x8.extadd_pairwise_i8x16_u None v:v
        27e i32x4.extadd_pairwise_i16x8_s None v:v
        27f i32x4.extadd_pairwise_i16x8_u None v:v
        280 i16x8.abs None v:v
        281 i16x8.neg None v:v
        282 i16x8.q15mulr_sat_s None vv:v
        283 i16x8.all_true None v:i
        284 i16x8.bitmask None v:i
        285 i16x8.narrow_i32x4_s None vv:v
        286 i16x8.narrow_i32x4_u None vv:v
        287 i16x8.extend_low_i8x16_s None v:v
        288 i16x8.extend_high_i8x16_s None v:v
        289 i16x8.extend_low_i8x16_u None v:v
        28a i16x8.extend_high_i8x16_u None v:v
        28b i16x8.shl None vi:v
        28c i16x8.shr_s None vi:v
        28d i16x8.shr_u None vi:v
        28e i16x8.add None vv:v
        28f i16x8.add_sat_s None vv:v
        290 i16x8.add_sat_u None vv:v
        291 i16x8.sub None vv:v
        292 i16x8.sub_sat_s None vv:v
        293 i16x8.sub_sat_u None vv:v
        294 f64x2.nearest None v:v
        295 i16x8.mul None vv:v
        296 i16x8.min_s None vv:v
        297 i16x8.min_u None vv:v
        298 i16x8.max_s None vv:v
        299 i16x8.max_u None vv:v
        29b i16x8.avgr_u None vv:v
        29c i16x8.extmul_low_i8x16_s None vv:v
        29d i16x8.extmul_high_i8x16_s None vv:v
        29e i16x8.extmul_low_i8x16_u None vv:v
        29f i16x8.extmul_high_i8x16_u None vv:v
        2a0 i32x4.abs None v:v
        2a1 i32x4.neg None v:v
        2a3 i32x4.all_true None v:i
        2a4 i32x4.bitmask None v:i
        2a7 i32x4.extend_low_i16x8_s None v:v
        2a8 i32x4.extend_high_i16x8_s None v:v
        2a9 i32x4.extend_low_i16x8_u None v:v
        2aa i32x4.extend_high_i16x8_u None v:v
        2ab i32x4.shl None vi:v
        2ac i32x4.shr_s None vi:v
        2ad i32x4.shr_u None vi:v
        2ae i32x4.add None vv:v
        2b1 i32x4.sub None vv:v
        2b5 i32x4.mul None vv:v
        2b6 i32x4.min_s None vv:v
        2b7 i32x4.min_u None vv:v
        2b8 i32x4.max_s None vv:v
        2b9 i32x4.max_u None vv:v
        2ba i32x4.dot_i16x8_s None vv:v
        2bc i32x4.extmul_low_i16x8_s None vv:v
        2bd i32x4.extmul_high_i16x8_s None vv:v
        2be i32x4.extmul_low_i16x8_u None vv:v
        2bf i32x4.extmul_high_i16x8_u None vv:v
        2c0 i64x2.abs None v:v
        2c1 i64x2.neg None v:v
        2c3 i64x2.all_true None v:i
        2c4 i64x2.bitmask None v:i
        2c7 i64x2.extend_low_i32x4_s None v:v
        2c8 i64x2.extend_high_i32x4_s None v:v
        2c9 i64x2.extend_low_i32x4_u None v:v
        2ca i64x2.extend_high_i32x4_u None v:v
        2cb i64x2.shl None vi:v
        2cc i64x2.shr_s None vi:v
        2cd i64x2.shr_u None vi:v
        2ce i64x2.add None vv:v
        2d1 i64x2.sub None vv:v
        2d5 i64x2.mul None vv:v
        2d6 i64x2.eq None vv:v
        2d7 i64x2.ne None vv:v
        2d8 i64x2.lt_s None vv:v
        2d9 i64x2.gt_s None vv:v
        2da i64x2.le_s None vv:v
        2db i64x2.ge_s None vv:v
        2dc i64x2.extmul_low_i32x4_s None vv:v
        2dd i64x2.extmul_high_i32x4_s None vv:v
        2de i64x2.extmul_low_i32x4_u None vv:v
        2df i64x2.extmul_high_i32x4_u None vv:v
        2e0 f32x4.abs None v:v
        2e1 f32x4.neg None v:v
        2e3 f32x4.sqrt None v:v
        2e4 f32x4.add None vv:v
        2e5 f32x4.sub None vv:v
        2e6 f32x4.mul None vv:v
        2e7 f32x4.div None vv:v
        2e8 f32x4.min None vv:v
        2e9 f32x4.max None vv:v
        2ea f32x4.pmin None vv:v
        2eb f32x4.pmax None vv:v
        2ec f64x2.abs None v:v
        2ed f64x2.neg None v:v
        2ef f64x2.sqrt None v:v
        2f0 f64x2.add None vv:v
        2f1 f64x2.sub None vv:v
        2f2 f64x2.mul None vv:v
        2f3 f64x2.div None vv:v
        2f4 f64x2.min None vv:v
        2f5 f64x2.max None vv:v
        2f6 f64x2.pmin None vv:v
        2f7 f64x2.pmax None vv:v
        2f8 i32x4.trunc_sat_f32x4_s None v:v
        2f9 i32x4.trunc_sat_f32x4_u None v:v
        2fa f32x4.convert_i32x4_s None v:v
        2fb f32x4.convert_i32x4_u None v:v
        2fc i32x4.trunc_sat_f64x2_s_zero None v:v
        2fd i32x4.trunc_sat_f64x2_u_zero None v:v
        2fe f64x2.convert_low_i32x4_s None v:v
        2ff f64x2.convert_low_i32x4_u None v:v
        """;

    private static OpInfo?[] Build()
    {
        var table = new OpInfo?[TableSize];
        foreach (var rawLine in Definitions.Split('\n'))
        {
            var line = rawLine.Trim();
            if (line.Length == 0) continue;
            var parts = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            var code = Convert.ToInt32(parts[0], 16);
            var imm = Enum.Parse<Immediate>(parts[2]);
            ValueType[]? pops = null, pushes = null;
            if (parts[3] != "-")
            {
                var sig = parts[3].Split(':');
                pops = sig[0].Select(Letter).ToArray();
                pushes = sig[1].Select(Letter).ToArray();
            }
            var size = parts.Length > 4 ? int.Parse(parts[4], System.Globalization.CultureInfo.InvariantCulture) : 0;
            table[code] = new OpInfo(code, parts[1], imm, pops, pushes, size);
        }
        return table;
    }

    /// <summary>Placeholder type for an address operand; resolved to i32 or i64 by the memory's index type.</summary>
    public const ValueType Address = (ValueType)0x01;

    private static ValueType Letter(char c) => c switch
    {
        'i' => ValueType.I32,
        'l' => ValueType.I64,
        'f' => ValueType.F32,
        'd' => ValueType.F64,
        'v' => ValueType.V128,
        'a' => Address,
        _ => throw new InvalidOperationException($"bad signature letter {c}"),
    };
}
