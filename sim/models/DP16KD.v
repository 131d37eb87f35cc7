// Simulation model of the Lattice ECP5 DP16KD block RAM, for the subset rasterflow
// instantiates (hdl/bram.py), written from the ECP5 memory usage guide (TN1264):
//
// * one clock: CLKA clocks both ports (CLKB must be the same net);
// * DATA_WIDTH_A == DATA_WIDTH_B, one of 1, 2, 4, 9, 18; the word address is AD[13:low]
//   with low = 0, 1, 2, 3, 4; in the 18-bit configuration AD1/AD0 are a write's byte
//   enables (DI[17:9] / DI[8:0]);
// * CE enables a port's input registers: its write and its read into the output latch;
//   WRITEMODE NORMAL keeps the latch during a write, WRITETHROUGH loads the written word,
//   READBEFOREWRITE the old word; RST (synchronous) clears the latch;
// * REGMODE OUTREG adds the output register, loaded from the latch when OCE is high;
//   NOREG drives DO from the latch;
// * CS decoding is not modelled: CSDECODE must be "0b000" with CS tied low.
//
// A read on one port of the address the other port writes in the same cycle is undefined
// in the hardware; the model loads the reading port's latch with a scrambled word (the old
// word inverted), so a design that uses such a read fails its bit-exact tests.
module DP16KD (
  input DIA17, DIA16, DIA15, DIA14, DIA13, DIA12, DIA11, DIA10, DIA9, DIA8, DIA7, DIA6, DIA5, DIA4, DIA3, DIA2, DIA1, DIA0,
  input ADA13, ADA12, ADA11, ADA10, ADA9, ADA8, ADA7, ADA6, ADA5, ADA4, ADA3, ADA2, ADA1, ADA0,
  input CEA, OCEA, CLKA, WEA, RSTA, CSA2, CSA1, CSA0,
  output DOA17, DOA16, DOA15, DOA14, DOA13, DOA12, DOA11, DOA10, DOA9, DOA8, DOA7, DOA6, DOA5, DOA4, DOA3, DOA2, DOA1, DOA0,
  input DIB17, DIB16, DIB15, DIB14, DIB13, DIB12, DIB11, DIB10, DIB9, DIB8, DIB7, DIB6, DIB5, DIB4, DIB3, DIB2, DIB1, DIB0,
  input ADB13, ADB12, ADB11, ADB10, ADB9, ADB8, ADB7, ADB6, ADB5, ADB4, ADB3, ADB2, ADB1, ADB0,
  input CEB, OCEB, CLKB, WEB, RSTB, CSB2, CSB1, CSB0,
  output DOB17, DOB16, DOB15, DOB14, DOB13, DOB12, DOB11, DOB10, DOB9, DOB8, DOB7, DOB6, DOB5, DOB4, DOB3, DOB2, DOB1, DOB0
);
  parameter DATA_WIDTH_A = 18;
  parameter DATA_WIDTH_B = 18;
  parameter REGMODE_A = "NOREG";
  parameter REGMODE_B = "NOREG";
  parameter RESETMODE = "SYNC";
  parameter ASYNC_RESET_RELEASE = "SYNC";
  parameter CSDECODE_A = "0b000";
  parameter CSDECODE_B = "0b000";
  parameter WRITEMODE_A = "NORMAL";
  parameter WRITEMODE_B = "NORMAL";
  parameter GSR = "ENABLED";

  localparam W = DATA_WIDTH_A;
  localparam LOW = W == 18 ? 4 : W == 9 ? 3 : W == 4 ? 2 : W == 2 ? 1 : 0;
  localparam WORDS = 16384 >> LOW;

  wire [17:0] dia = {DIA17, DIA16, DIA15, DIA14, DIA13, DIA12, DIA11, DIA10, DIA9, DIA8, DIA7, DIA6, DIA5, DIA4, DIA3, DIA2, DIA1, DIA0};
  wire [17:0] dib = {DIB17, DIB16, DIB15, DIB14, DIB13, DIB12, DIB11, DIB10, DIB9, DIB8, DIB7, DIB6, DIB5, DIB4, DIB3, DIB2, DIB1, DIB0};
  wire [13:0] ada = {ADA13, ADA12, ADA11, ADA10, ADA9, ADA8, ADA7, ADA6, ADA5, ADA4, ADA3, ADA2, ADA1, ADA0};
  wire [13:0] adb = {ADB13, ADB12, ADB11, ADB10, ADB9, ADB8, ADB7, ADB6, ADB5, ADB4, ADB3, ADB2, ADB1, ADB0};
  wire [13:0] word_a = ada >> LOW;
  wire [13:0] word_b = adb >> LOW;

  reg [17:0] mem [0:WORDS-1];
  reg [17:0] latch_a = 0, latch_b = 0, out_a = 0, out_b = 0;

  initial begin
    if (DATA_WIDTH_A != DATA_WIDTH_B || !(W == 1 || W == 2 || W == 4 || W == 9 || W == 18)) begin
      $display("DP16KD model: unsupported widths %0d/%0d", DATA_WIDTH_A, DATA_WIDTH_B);
      $fatal;
    end
    if (CSDECODE_A != "0b000" || CSDECODE_B != "0b000" || RESETMODE != "SYNC") begin
      $display("DP16KD model: only CSDECODE 0b000 and RESETMODE SYNC are modelled");
      $fatal;
    end
  end

  function [17:0] merged(input [17:0] old, input [17:0] din, input [13:0] ad);
    if (W == 18)
      merged = {ad[1] ? din[17:9] : old[17:9], ad[0] ? din[8:0] : old[8:0]};
    else
      merged = din & ((18'd1 << W) - 1);
  endfunction

  function [17:0] on_write(input [17:0] latch, input [17:0] old, input [17:0] new_word,
                           input integer mode);
    // mode: 0 NORMAL, 1 WRITETHROUGH, 2 READBEFOREWRITE
    on_write = mode == 1 ? new_word : mode == 2 ? old : latch;
  endfunction

  localparam MODE_A = WRITEMODE_A == "WRITETHROUGH" ? 1 : WRITEMODE_A == "READBEFOREWRITE" ? 2 : 0;
  localparam MODE_B = WRITEMODE_B == "WRITETHROUGH" ? 1 : WRITEMODE_B == "READBEFOREWRITE" ? 2 : 0;

  always @(posedge CLKA) begin
    if (OCEA) out_a <= latch_a;
    if (OCEB) out_b <= latch_b;
    if (CEA) begin
      if (RSTA) latch_a <= 0;
      else if (WEA) latch_a <= on_write(latch_a, mem[word_a], merged(mem[word_a], dia, ada), MODE_A);
      else latch_a <= mem[word_a];
      if (WEA) mem[word_a] <= merged(mem[word_a], dia, ada);
    end
    if (CEB) begin
      if (RSTB) latch_b <= 0;
      else if (WEB) latch_b <= on_write(latch_b, mem[word_b], merged(mem[word_b], dib, adb), MODE_B);
      else latch_b <= mem[word_b];
      if (WEB) mem[word_b] <= merged(mem[word_b], dib, adb);
    end
    // Cross-port collisions: the reading port gets a scrambled word.
    if (CEA && CEB && word_a == word_b && WEA && !WEB && !RSTB) latch_b <= ~mem[word_b];
    if (CEA && CEB && word_a == word_b && WEB && !WEA && !RSTA) latch_a <= ~mem[word_a];
  end

  wire [17:0] doa = REGMODE_A == "OUTREG" ? out_a : latch_a;
  wire [17:0] dob = REGMODE_B == "OUTREG" ? out_b : latch_b;
  assign {DOA17, DOA16, DOA15, DOA14, DOA13, DOA12, DOA11, DOA10, DOA9, DOA8, DOA7, DOA6, DOA5, DOA4, DOA3, DOA2, DOA1, DOA0} = doa;
  assign {DOB17, DOB16, DOB15, DOB14, DOB13, DOB12, DOB11, DOB10, DOB9, DOB8, DOB7, DOB6, DOB5, DOB4, DOB3, DOB2, DOB1, DOB0} = dob;
endmodule
