%% supervisor-restart, the Erlang side of Parley's workload of the same name: a permanent
%% gen_server child of a one_for_one supervisor crashes on a cast; time until its replacement
%% has run init (it reports its pid to the bench process). 10,000 restarts; crash reports
%% are silenced, as Parley's bench silences its own.
%%
%%   erlc -o /tmp bench/erlang/sup_restart.erl && erl -noshell -pa /tmp -s sup_restart main
-module(sup_restart).
-behaviour(supervisor).
-export([main/0, init/1, start_child/1, handle_call/3, handle_cast/2]).

main() ->
    logger:set_primary_config(level, critical),
    N = 10000,
    Self = self(),
    {ok, _Sup} = supervisor:start_link(?MODULE, {sup, Self, N}),
    First = receive {started, P} -> P end,
    T0 = erlang:monotonic_time(nanosecond),
    loop(First, N),
    Us = (erlang:monotonic_time(nanosecond) - T0) / N / 1000,
    io:format("{\"peer\":\"erlang\",\"workload\":\"supervisor-restart\",\"value\":~.4f,\"unit\":\"us/restart\"}~n", [Us]),
    halt(0).

loop(_Pid, 0) -> ok;
loop(Pid, N) ->
    gen_server:cast(Pid, crash),
    receive {started, New} -> loop(New, N - 1) end.

init({sup, Report, N}) ->
    Child = #{id => crasher, start => {?MODULE, start_child, [Report]}, restart => permanent},
    {ok, {#{strategy => one_for_one, intensity => N + 10, period => 3600}, [Child]}};
init({child, Report}) ->
    Report ! {started, self()},
    {ok, Report}.

start_child(Report) -> gen_server:start_link(?MODULE, {child, Report}, []).

handle_call(_Req, _From, S) -> {reply, ok, S}.
handle_cast(crash, _S) -> exit(crash).
