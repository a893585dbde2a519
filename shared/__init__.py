"""What more than one service uses, in named packages: the contract (``contract``), pure
domain building blocks (``domain``), NATS and its reliability (``messaging``), PostgreSQL
(``persistence``), HTTP (``web``), one service process (``service``), department systems on
NATS (``ingress``), the embedded servers of ``minqing up`` (``embedded``) and the command
line (``cli``). Nothing here imports ``services``."""
