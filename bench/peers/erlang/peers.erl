%% Parley benchmark peer: the workloads of bench/peers/README.md in Erlang/OTP.
%% Usage (normally through run-erlang): erl ... -run peers main [workload...]
%% One JSON line per result on stdout; diagnostics on stderr only.
-module(peers).
-behaviour(gen_server).
-export([main/0, main/1, echo/0, sink/4]).
-export([init/1, handle_call/3, handle_cast/2]).

-define(WORKLOADS, ["skynet", "genserver-call", "ping-pong", "spawn-idle", "ring",
                    "fan-in", "remote-pp", "remote-tput"]).

main() -> main([]).

main(Args) ->
    Selected = case Args of [] -> ?WORKLOADS; _ -> Args end,
    case [W || W <- Selected, not lists:member(W, ?WORKLOADS)] of
        [] -> ok;
        Bad ->
            err("unknown workload(s): ~s~nknown: ~s~n",
                [lists:join(" ", Bad), lists:join(" ", ?WORKLOADS)]),
            erlang:halt(2)
    end,
    Status = try
                 lists:foreach(fun run/1, Selected),
                 0
             catch Class:Reason:Stack ->
                 err("peers: FAILED: ~p:~p~n~p~n", [Class, Reason, Stack]),
                 1
             end,
    erlang:halt(Status).

%% Every workload runs in a fresh process, so one workload's heap never
%% lingers into the next; a crash in it becomes a failure here.
run(Name) ->
    erlang:garbage_collect(),
    {Pid, Ref} = spawn_monitor(fun() -> exit({done, workload(Name)}) end),
    receive
        {'DOWN', Ref, process, Pid, {done, Results}} ->
            [emit(W, V, U) || {W, V, U} <- Results], ok;
        {'DOWN', Ref, process, Pid, Reason} ->
            error({workload_failed, Name, Reason})
    end.

emit(Workload, Value, Unit) ->
    io:format("{\"peer\":\"erlang\",\"workload\":\"~s\",\"value\":~s,\"unit\":\"~s\"}~n",
              [Workload, fmt(Value), Unit]).

%% About four significant digits, always a valid JSON number.
fmt(V) when V == 0 -> "0";
fmt(V) ->
    D = max(0, 3 - floor(math:log10(abs(V)))),
    float_to_list(float(V), [{decimals, D}, compact]).

err(Fmt, Args) -> io:format(standard_error, Fmt, Args).

now_ns() -> erlang:monotonic_time(nanosecond).

check(true, _What) -> ok;
check(false, What) -> error({verification_failed, What}).

%% ---------------------------------------------------------------- workloads

%% skynet: a tree of processes 10 wide, 6 deep; the 1,000,000 leaves send
%% their numbers up, every inner process sums its 10 children.
workload("skynet") ->
    T0 = now_ns(),
    Self = self(),
    spawn(fun() -> skynet(Self, 0, 1000000, 10) end),
    Sum = receive S -> S end,
    Secs = (now_ns() - T0) / 1.0e9,
    Sum =:= 499999500000 orelse
        error({skynet_wrong_sum, Sum, expected, 499999500000}),
    [{"skynet", Secs, "s"}];

%% genserver-call: 1,000,000 gen_server:call/2 to one gen_server (this module).
workload("genserver-call") ->
    N = 1000000,
    {ok, Server} = gen_server:start_link(?MODULE, 0, []),
    T0 = now_ns(),
    calls(Server, N),
    Ns = (now_ns() - T0) / N,
    check(gen_server:call(Server, count) =:= N, server_call_count),
    gen_server:stop(Server),
    [{"genserver-call", Ns, "ns/call"}];

%% ping-pong: this process and one echo process bounce an integer.
workload("ping-pong") ->
    N = 1000000,
    Echo = spawn_link(?MODULE, echo, []),
    Echo ! self(),
    T0 = now_ns(),
    check(bounce(Echo, 0, N) =:= N, ping_pong_final_value),
    Ns = (now_ns() - T0) / N,
    Echo ! stop,
    [{"ping-pong", Ns, "ns/roundtrip"}];

%% spawn-idle: 1,000,000 processes each blocked in `receive`.
%% Memory = growth of the OS process's resident set (VmRSS in
%% /proc/<os pid>/status, i.e. beam.smp's RSS) from just before the first
%% spawn to just after the last, divided by 1,000,000.  It includes each
%% process's control block and initial heap/stack (233 words) and the
%% 16-byte list cell per process that holds its pid for the wake phase.
workload("spawn-idle") ->
    N = 1000000,
    Self = self(),
    Rss0 = rss_bytes(),
    T0 = now_ns(),
    Pids = spawn_idle(N, Self, []),
    T1 = now_ns(),
    Rss1 = rss_bytes(),
    [P ! go || P <- Pids],
    check(collect(done, N) =:= N, spawn_idle_all_woke),
    T2 = now_ns(),
    [{"spawn-idle.spawn", (T1 - T0) / 1.0e9, "s"},
     {"spawn-idle.memory", (Rss1 - Rss0) / N, "B/process"},
     {"spawn-idle.wake", (T2 - T1) / 1.0e9, "s"}];

%% ring: 1000 processes, one token, 1,000,000 hops (1000 times round).
workload("ring") ->
    Size = 1000, Hops = 1000000,
    Self = self(),
    Last = spawn_link(fun() -> receive {next, Next} -> ring_node(Next, Self) end end),
    Head = lists:foldl(fun(_, Next) -> spawn_link(fun() -> ring_node(Next, Self) end) end,
                       Last, lists:seq(2, Size)),
    Last ! {next, Head},
    T0 = now_ns(),
    Head ! {token, Hops},
    Finisher = receive {finished, P} -> P end,
    Ns = (now_ns() - T0) / Hops,
    %% 1,000,000 is a multiple of 1000: the token must end where it started.
    check(Finisher =:= Head, ring_token_ends_at_head),
    Head ! stop,
    [{"ring", Ns, "ns/hop"}];

%% fan-in: 4 producers each send 1..1,000,000 to this process.
workload("fan-in") ->
    P = 4, N = 1000000,
    Self = self(),
    T0 = now_ns(),
    [spawn_link(fun() -> produce(Self, 1, N) end) || _ <- lists:seq(1, P)],
    Sum = consume(P * N, 0),
    Secs = (now_ns() - T0) / 1.0e9,
    check(Sum =:= P * N * (N + 1) div 2, fan_in_sum),
    [{"fan-in", P * N / Secs / 1.0e6, "M msg/s"}];

%% remote-pp: ping-pong with an echo process on a second node (loopback TCP).
workload("remote-pp") ->
    with_peer(fun(Node) ->
        Warm = 1000, N = 100000,
        Echo = spawn(Node, ?MODULE, echo, []),
        Echo ! self(),
        check(bounce(Echo, 0, Warm) =:= Warm, remote_pp_warmup),
        T0 = now_ns(),
        check(bounce(Echo, 0, N) =:= N, remote_pp_final_value),
        Ns = (now_ns() - T0) / N,
        Echo ! stop,
        [{"remote-pp", Ns, "ns/roundtrip"}]
    end);

%% remote-tput: 1,000,000 64-byte binaries to a sink on the second node,
%% which reports once it has received all of them.
workload("remote-tput") ->
    with_peer(fun(Node) ->
        N = 1000000,
        Bin = binary:copy(<<"p">>, 64),
        Sink = spawn(Node, ?MODULE, sink, [self(), N, 0, 0]),
        T0 = now_ns(),
        send_n(Sink, Bin, N),
        Got = receive {sink_done, _, _} = D -> D after 120000 -> timeout end,
        Secs = (now_ns() - T0) / 1.0e9,
        check(Got =:= {sink_done, N, 64 * N}, {remote_tput_received, Got}),
        [{"remote-tput", N / Secs / 1.0e6, "M msg/s"}]
    end).

%% ---------------------------------------------------------------- helpers

skynet(Parent, Num, 1, _Div) ->
    Parent ! Num;
skynet(Parent, Num, Size, Div) ->
    Self = self(),
    Sub = Size div Div,
    [spawn(fun() -> skynet(Self, Num + I * Sub, Sub, Div) end) || I <- lists:seq(0, Div - 1)],
    Parent ! sum_children(Div, 0).

sum_children(0, Acc) -> Acc;
sum_children(K, Acc) -> receive S -> sum_children(K - 1, Acc + S) end.

calls(_Server, 0) -> ok;
calls(Server, K) ->
    K = gen_server:call(Server, {echo, K}),
    calls(Server, K - 1).

init(Count) -> {ok, Count}.
handle_call({echo, X}, _From, Count) -> {reply, X, Count + 1};
handle_call(count, _From, Count) -> {reply, Count, Count}.
handle_cast(_Msg, Count) -> {noreply, Count}.

%% echo: first message is the partner's pid, then every integer N comes
%% back as N + 1 until `stop`.
echo() -> receive Peer when is_pid(Peer) -> echo(Peer) end.
echo(Peer) ->
    receive
        stop -> ok;
        N when is_integer(N) -> Peer ! N + 1, echo(Peer)
    end.

bounce(_Echo, V, 0) -> V;
bounce(Echo, V, K) ->
    Echo ! V,
    receive R when is_integer(R) -> bounce(Echo, R, K - 1) end.

spawn_idle(0, _Parent, Acc) -> Acc;
spawn_idle(K, Parent, Acc) ->
    P = spawn(fun() -> receive go -> Parent ! done end end),
    spawn_idle(K - 1, Parent, [P | Acc]).

collect(Msg, N) -> collect(Msg, N, 0).
collect(_Msg, N, N) -> N;
collect(Msg, N, Got) -> receive Msg -> collect(Msg, N, Got + 1) end.

rss_bytes() ->
    {ok, Status} = file:read_file("/proc/" ++ os:getpid() ++ "/status"),
    {match, [Kb]} = re:run(Status, "VmRSS:\\s+(\\d+) kB", [{capture, all_but_first, list}]),
    list_to_integer(Kb) * 1024.

ring_node(Next, Main) ->
    receive
        {token, 0} -> Main ! {finished, self()}, ring_node(Next, Main);
        {token, K} -> Next ! {token, K - 1}, ring_node(Next, Main);
        stop -> Next ! stop
    end.

produce(_To, I, N) when I > N -> ok;
produce(To, I, N) -> To ! I, produce(To, I + 1, N).

consume(0, Sum) -> Sum;
consume(K, Sum) -> receive I -> consume(K - 1, Sum + I) end.

send_n(_To, _Bin, 0) -> ok;
send_n(To, Bin, K) -> To ! Bin, send_n(To, Bin, K - 1).

%% sink: counts N binaries (and their bytes), then tells Parent.
sink(Parent, N, Count, Bytes) when Count =:= N ->
    Parent ! {sink_done, Count, Bytes};
sink(Parent, N, Count, Bytes) ->
    receive B when is_binary(B) -> sink(Parent, N, Count + 1, Bytes + byte_size(B)) end.

%% ---------------------------------------------------------------- second node

%% Runs Fun(Node) with a second node started by OTP's `peer` module: a
%% separate beam.smp OS process that talks to this one over loopback TCP
%% (Erlang distribution, long names on 127.0.0.1).  Both nodes find each
%% other through the private epmd named by ERL_EPMD_PORT (run-erlang starts
%% it); the system epmd on 4369 is refused.  The peer halts by itself if
%% this node dies; it is stopped here on every other path.
with_peer(Fun) ->
    EpmdPort = case init:get_argument(epmd_port) of
                   {ok, [[P | _] | _]} -> list_to_integer(P);
                   error -> 4369
               end,
    EpmdPort =/= 4369 orelse
        error("remote workloads need a private epmd: set ERL_EPMD_PORT (run-erlang does)"),
    Tag = os:getpid(),
    case node() of
        nonode@nohost ->
            {ok, _} = net_kernel:start(list_to_atom("parley_a_" ++ Tag ++ "@127.0.0.1"),
                                       #{name_domain => longnames});
        _ -> ok
    end,
    Dir = filename:dirname(code:which(?MODULE)),
    {ok, Peer, Node} =
        peer:start_link(#{name => "parley_b_" ++ Tag, host => "127.0.0.1", longnames => true,
                          args => ["-pa", Dir, "-setcookie", atom_to_list(erlang:get_cookie()),
                                   "-start_epmd", "false",
                                   "-kernel", "inet_dist_use_interface", "{127,0,0,1}",
                                   "+sbwt", "none", "+sbwtdcpu", "none", "+sbwtdio", "none"]}),
    try
        note_peer_pid(erpc:call(Node, os, getpid, [])),
        Fun(Node)
    after
        peer:stop(Peer)
    end.

%% run-erlang kills this OS pid in its trap if the peer somehow outlives us.
note_peer_pid(OsPid) ->
    case os:getenv("PARLEY_PEERS_PIDFILE") of
        false -> ok;
        File -> ok = file:write_file(File, OsPid ++ "\n")
    end.
