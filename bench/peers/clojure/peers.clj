;; Parley benchmark peer: the shared concurrency workloads in Clojure core.async.
;; Go blocks are the lightweight processes, channels are the mailboxes.
;; Usage: java -cp <clojure+core.async> clojure.main peers.clj [workload...]
;; Prints one JSON line per result on stdout; diagnostics go to stderr.
(ns peers
  (:require [clojure.core.async :as a :refer [go go-loop chan <! >! >!! close! put!]]
            [clojure.string :as str])
  (:import [java.util.concurrent CountDownLatch TimeUnit]
           [java.math BigDecimal MathContext]))

(defn now ^long [] (System/nanoTime))
(defn secs ^double [^long t0] (/ (- (now) t0) 1e9))
(defn log [& xs] (binding [*out* *err*] (apply println "clojure peer:" xs)))
(def ^:dynamic *warming* false)
(defn diag [& xs] (when-not *warming* (apply log xs)))

(defn check [ok & what]
  (when-not ok (throw (ex-info (str "verification failed: " (apply str what)) {}))))

(defn await!
  "Blocking take of a workload's result, failing loudly instead of hanging."
  [ch what]
  (let [t (a/timeout 600000) [v port] (a/alts!! [ch t])]
    (check (not= port t) what " timed out") v))

(defn await-latch! [^CountDownLatch l what]
  (check (.await l 600 TimeUnit/SECONDS) what " timed out"))

;; ---- skynet: 10-wide tree of go blocks; each parent owns a mailbox (buffer 10,
;; so no child ever parks on its send), sums its 10 children and sends the sum up.
(defn skynet-node [out num size]
  (go (if (= size 1)
        (>! out num)
        (let [mb (chan 10) sub (quot size 10)]
          (dotimes [i 10] (skynet-node mb (+ num (* i sub)) sub))
          (loop [i 0 sum 0]
            (if (< i 10) (recur (inc i) (+ sum (<! mb))) (>! out sum)))))))

(defn skynet [leaves]
  (let [out (chan 1) t0 (now)]
    (skynet-node out 0 leaves)
    (let [sum (await! out "skynet") dt (secs t0)
          want (quot (* leaves (dec leaves)) 2)]
      (check (= sum want) "skynet sum " sum ", expected " want)
      [["skynet" dt "s"]])))

;; ---- two go blocks bounce an integer; each has its own inbox channel.
;; ping-pong: inboxes are mailboxes (buffer 1: a send never waits for the receiver);
;; chan-pp: the same over two unbuffered channels (a send is a rendezvous).
(defn bounce [name buf n]
  (let [inbox-a (chan buf) inbox-b (chan buf) t0 (now)]
    (go-loop [] (when-some [v (<! inbox-b)] (>! inbox-a (inc v)) (recur)))
    (let [r (await! (go-loop [i 0 v 0]
                      (if (< i n) (do (>! inbox-b v) (recur (inc i) (<! inbox-a))) v))
                    name)
          dt (- (now) t0)]
      (close! inbox-b)
      (check (= r n) name " ended with " r ", expected " n)
      [[name (/ dt (double n)) "ns/roundtrip"]])))

;; ---- spawn-idle: n go blocks, each parked on a take from its own unbuffered channel.
(defn page-size [] (Long/parseLong (System/getProperty "peers.pagesize" "4096")))
(defn rss-bytes ^long []
  ;; /proc/self/statm field 2 = resident pages of this JVM process
  (* (page-size) (Long/parseLong (second (str/split (first (java.nio.file.Files/readAllLines
                                                    (.toPath (java.io.File. "/proc/self/statm"))))
                                  #" ")))))
(defn heap-used [] (let [r (Runtime/getRuntime)] (- (.totalMemory r) (.freeMemory r))))

(defn spawn-idle [n]
  (let [chs (object-array n) ^CountDownLatch started (CountDownLatch. n)
        ^CountDownLatch done (CountDownLatch. n)
        _ (System/gc)
        heap0 (heap-used) rss0 (rss-bytes) t0 (now)]
    (dotimes [i n]
      (let [c (chan)]
        (aset chs i c)
        (go (.countDown started)                 ; the next step parks on the take
            (when (= (<! c) i) (.countDown done)))))
    (await-latch! started "spawn-idle spawn")
    ;; spawn time = until every go block has run up to its take; memory = growth of
    ;; the JVM's resident set over those spawns (the channels, the parked go-block
    ;; state machines and take handlers, the 8 B/slot array holding the channels,
    ;; and any garbage not yet collected: pages the heap touched for the first time).
    (let [t-spawn (secs t0) rss1 (rss-bytes)]
      (when *warming*                 ; cross-check on the small runs only, so that the
        (System/gc)                   ; timed wake starts from the heap the spawns left
        (log (format "spawn-idle warm-up: live heap after GC %.0f B/process"
                     (/ (- (heap-used) heap0) (double n)))))
      (let [t1 (now)]
        (dotimes [i n] (put! (aget chs i) i))
        (await-latch! done "spawn-idle wake")   ; each counted down only on its own value
        [["spawn-idle.spawn" t-spawn "s"]
         ["spawn-idle.memory" (/ (- rss1 rss0) (double n)) "B/process"]
         ["spawn-idle.wake" (secs t1) "s"]]))))

;; ---- ring: procs go blocks, each with a mailbox (buffer 1), pass a countdown token.
(defn ring [procs rounds]
  (let [hops (* procs rounds) mbs (vec (repeatedly procs #(chan 1))) done (chan 1)]
    (dotimes [i procs]
      (let [in (mbs i) out (mbs (mod (inc i) procs))]
        (go-loop []
          (when-some [t (<! in)]
            (if (zero? t) (>! done i) (do (>! out (dec t)) (recur)))))))
    (let [t0 (now) _ (>!! (mbs 0) hops) who (await! done "ring") dt (- (now) t0)]
      (run! close! mbs)
      (check (= who (mod hops procs)) "ring token stopped at " who)
      [["ring" (/ dt (double hops)) "ns/hop"]])))

;; ---- fan-in: producers go blocks send to one consumer's mailbox (buffer 1024).
(defn fan-in [producers per]
  (let [mb (chan 1024) total (* producers per) t0 (now)]
    (dotimes [_ producers] (go (dotimes [i per] (>! mb i))))
    (let [sum (await! (go-loop [k 0 sum 0] (if (< k total) (recur (inc k) (+ sum (<! mb))) sum))
                      "fan-in")
          dt (secs t0)]
      (check (= sum (* producers (quot (* per (dec per)) 2))) "fan-in sum " sum)
      [["fan-in" (/ total dt 1e6) "M msg/s"]])))

;; ---- chan-spsc / chan-mpmc: producers and consumers over one channel, buffer 1024.
;; Producers send 0..per-1 each; the channel is closed when all producers are done;
;; each consumer counts and sums what it takes until the channel is drained.
(defn chan-mpmc [name producers consumers total]
  (let [c (chan 1024) per (quot total producers) t0 (now)
        ps (doall (for [_ (range producers)] (go (dotimes [i per] (>! c i)))))
        _ (go (doseq [p ps] (<! p)) (close! c))
        cs (doall (for [_ (range consumers)]
                    (go-loop [k 0 sum 0] (if-some [v (<! c)] (recur (inc k) (+ sum v)) [k sum]))))
        res (mapv #(await! % name) cs)
        dt (secs t0)
        n (reduce + (map first res)) sum (reduce + (map second res))]
    (check (= n (* per producers)) name " got " n " items")
    (check (= sum (* producers (quot (* per (dec per)) 2))) name " sum " sum)
    [[name (/ n dt 1e6) "M items/s"]]))

;; ---- the seed's example, as written there: n unbuffered channels made by
;; (repeatedly n chan), one go block puts "hi" on each, and the calling thread reads
;; with alts!! over all of them until it has read n values. The channels stay a lazy
;; seq as in the seed, so alts!! reaches each by nth (linear); the same with a vector
;; is logged to stderr for comparison (see README).
(defn alts-read [n cs]
  (let [t0 (now)]
    (doseq [c cs] (go (>! c "hi")))
    (let [k (loop [k 0]
              (if (< k n)
                (let [[v _] (a/alts!! cs)] (if (= v "hi") (recur (inc k)) k))
                k))]
      (check (= k n) "seed-alts read " k " values, expected " n)
      (* 1000 (secs t0)))))

(defn seed-alts [name n]
  (let [ms (alts-read n (repeatedly n chan))]
    (diag (format "%s: %.1f ms as in the seed; %.1f ms with the channels in a vector" name ms
                 (alts-read n (vec (repeatedly n chan)))))
    [[name ms "ms"]]))

;; ---- workloads in README order: name -> [full run, warm-up run with small counts]
(def workloads
  [["skynet"          #(skynet 1000000)                 #(skynet 10000)]
   ["ping-pong"       #(bounce "ping-pong" 1 1000000)   #(bounce "ping-pong" 1 20000)]
   ["spawn-idle"      #(spawn-idle 1000000)             #(spawn-idle 20000)]
   ["ring"            #(ring 1000 1000)                 #(ring 100 200)]
   ["fan-in"          #(fan-in 4 1000000)               #(fan-in 4 20000)]
   ["chan-pp"         #(bounce "chan-pp" nil 1000000)   #(bounce "chan-pp" nil 20000)]
   ["chan-spsc"       #(chan-mpmc "chan-spsc" 1 1 10000000) #(chan-mpmc "chan-spsc" 1 1 100000)]
   ["chan-mpmc"       #(chan-mpmc "chan-mpmc" 4 4 4000000)  #(chan-mpmc "chan-mpmc" 4 4 100000)]
   ["seed-alts-1000"  #(seed-alts "seed-alts-1000" 1000)   #(seed-alts "seed-alts-1000" 300)]
   ["seed-alts-10000" #(seed-alts "seed-alts-10000" 10000) #(seed-alts "seed-alts-10000" 1000)]])

(defn fmt [v] (.toPlainString (.round (BigDecimal. (double v)) (MathContext. 4))))

(defn emit [[workload value unit]]
  (println (str "{\"peer\":\"core.async\",\"workload\":\"" workload "\",\"value\":" (fmt value)
                ",\"unit\":\"" unit "\"}"))
  (flush))

(defn -main [args]
  (let [known (set (map first workloads))
        base #(if (str/starts-with? % "spawn-idle.") "spawn-idle" %)
        wanted (set (map base args))
        unknown (remove known wanted)]
    (when (seq unknown)
      (binding [*out* *err*]
        (println "clojure peer: unknown workload(s):" (str/join " " unknown))
        (println "known:" (str/join " " (map first workloads))))
      (System/exit 2))
    (try
      (doseq [[name full warm] workloads :when (or (empty? wanted) (wanted name))]
        (log "warming up" name)
        (binding [*warming* true] (dotimes [_ 3] (warm)))
        (System/gc)
        (log "running" name)
        (run! emit (full)))
      (catch Throwable e
        (log "FAILED:" (.getMessage e))
        (System/exit 1)))
    (System/exit 0)))

(-main *command-line-args*)
